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
SD_ELF_AID: Final = bytes.fromhex("A0000001515350")
SD_MODULE_AID: Final = bytes.fromhex("A000000151535041")
"""The Security Domain package and module (GlobalPlatform's AIDs, as cards carry them in ROM): INSTALL of this
module with the Security Domain privilege makes a Supplementary Security Domain."""

#: Executable Module AID → demo behaviour; any other module behaves as `GenericApplet`.
APPLETS: Final[dict[bytes, type[Applet]]] = {
    TransitPurse.module_aid: TransitPurse,
    BankCard.module_aid: BankCard,
}

#: Load files a profile may put in ROM: ELF AID → its module AIDs.
DEMO_LOAD_FILES: Final[dict[bytes, list[bytes]]] = {
    TRANSIT_ELF_AID: [TransitPurse.module_aid],
    BANK_ELF_AID: [BankCard.module_aid],
    SD_ELF_AID: [SD_MODULE_AID],
}


def applet_for(entry: Application) -> Applet:
    """The behaviour of an application instance."""
    return APPLETS.get(entry.module_aid, GenericApplet)(entry)
