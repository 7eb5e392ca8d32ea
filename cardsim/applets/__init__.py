"""Demo applets: behaviour bound to Executable Module AIDs, and the load files that carry them."""

from __future__ import annotations

from typing import Final

from cardsim.applets.bank import BankCard
from cardsim.applets.base import Applet
from cardsim.applets.generic import GenericApplet
from cardsim.applets.transit import TransitPurse
from cardsim.registry import Application

TRANSIT_ELF_AID: Final = bytes.fromhex("F0000000010101")
BANK_ELF_AID: Final = bytes.fromhex("F0000000020101")

#: Executable Module AID → demo behaviour; any other module behaves as `GenericApplet`.
APPLETS: Final[dict[bytes, type[Applet]]] = {
    TransitPurse.module_aid: TransitPurse,
    BankCard.module_aid: BankCard,
}

#: Load files a profile may put in ROM: ELF AID → its module AIDs.
DEMO_LOAD_FILES: Final[dict[bytes, list[bytes]]] = {
    TRANSIT_ELF_AID: [TransitPurse.module_aid],
    BANK_ELF_AID: [BankCard.module_aid],
}


def applet_for(entry: Application) -> Applet:
    """The behaviour of an application instance."""
    return APPLETS.get(entry.module_aid, GenericApplet)(entry)
