"""What a demo applet implements: SELECT, APDU processing and personalization through STORE DATA.

An applet keeps its persistent state in its registry entry's `applet_state` (JSON-serialisable values),
so it survives the state file. Encrypted personalization data reaches it already decrypted by the SD.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from cardsim.apdu import CommandApdu, Response
from cardsim.lifecycle import AppLifeCycle
from cardsim.registry import Application
from cardsim.tlv import tlv


class Applet(ABC):
    """Behaviour of the instances of one Executable Module."""

    module_aid: ClassVar[bytes]

    def __init__(self, entry: Application) -> None:
        self.entry = entry

    @property
    def state(self) -> dict[str, Any]:
        """The persistent state of this instance."""
        return self.entry.applet_state

    def install(self, params: bytes) -> None:  # noqa: B027 - optional hook
        """Called once by INSTALL [for install] with the application-specific parameters (tag C9)."""

    def select(self) -> Response:
        """SELECT answer: FCI 6F with the instance AID."""
        return Response(tlv(0x6F, tlv(0x84, self.entry.aid)))

    @abstractmethod
    def process(self, apdu: CommandApdu) -> Response:
        """Any command while selected, other than SELECT."""

    @abstractmethod
    def store_data(self, records: list[tuple[int, bytes]], last: bool) -> None:
        """Personalization: DGIs (or BER-TLV objects) of one STORE DATA block, already decrypted."""

    def personalized(self) -> None:
        """Move the instance to the application-specific PERSONALIZED state (GPCS 5.3.1.3)."""
        locked = self.entry.life_cycle & AppLifeCycle.LOCKED
        self.entry.life_cycle = AppLifeCycle.PERSONALIZED | locked
