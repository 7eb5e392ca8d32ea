"""Stand-in behaviour for modules the simulator has no demo code for: selectable, personalizable, inert."""

from __future__ import annotations

from cardsim.apdu import CommandApdu, Response
from cardsim.applets.base import Applet
from cardsim.sw import SW


class GenericApplet(Applet):
    """Answers SELECT; every other command 6D00; STORE DATA counts the records it receives."""

    module_aid = b""

    def process(self, apdu: CommandApdu) -> Response:
        return Response(sw=SW.INS_NOT_SUPPORTED)

    def store_data(self, records: list[tuple[int, bytes]], last: bool) -> None:
        self.state["records"] = int(self.state.get("records", 0)) + len(records)
        if last:
            self.personalized()
