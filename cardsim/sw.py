"""Status words the card answers with (ISO/IEC 7816-4 5.6; GPCS 2.3.1 11.1.3 and each command's table)."""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class SW(IntEnum):
    """SW1SW2 values, as 16-bit integers."""

    OK = 0x9000
    """Normal processing."""
    MORE_DATA = 0x6310
    """GET STATUS: more data available (GPCS 2.3.1 11.4.3.2)."""
    SELECTED_FILE_INVALIDATED = 0x6283
    """SELECT of the ISD while the card is CARD_LOCKED (GPCS 2.3.1 11.9.3.2)."""
    AUTH_FAILED = 0x6300
    """EXTERNAL AUTHENTICATE: host cryptogram verification failed (GPCS 2.3.1 E.5.2.3, Amd D 7.2)."""
    WRONG_LENGTH = 0x6700
    """Wrong length (Lc inconsistent, APDU malformed)."""
    CHANNEL_NOT_SUPPORTED = 0x6881
    """Logical channel not supported."""
    SECURITY_STATUS = 0x6982
    """Security status not satisfied (no secure channel, bad C-MAC, missing privilege)."""
    AUTH_METHOD_BLOCKED = 0x6983
    """Authentication method blocked: retry limit exhausted."""
    CONDITIONS_NOT_SATISFIED = 0x6985
    """Conditions of use not satisfied (life cycle, sequence)."""
    APPLET_SELECT_FAILED = 0x6999
    """Applet selection failed: application LOCKED (Java Card convention)."""
    WRONG_DATA = 0x6A80
    """Incorrect values in the command data."""
    FUNCTION_NOT_SUPPORTED = 0x6A81
    """Function not supported (card TERMINATED)."""
    NOT_FOUND = 0x6A82
    """Application / file not found (SELECT)."""
    RECORD_NOT_FOUND = 0x6A83
    """Record not found (READ RECORD of the demo bank card)."""
    NOT_ENOUGH_MEMORY = 0x6A84
    """Not enough memory space."""
    WRONG_P1P2 = 0x6A86
    """Incorrect P1 P2."""
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    """Referenced data not found."""
    INS_NOT_SUPPORTED = 0x6D00
    """Instruction code not supported."""
    CLA_NOT_SUPPORTED = 0x6E00
    """Class not supported."""


def is_success(sw: int) -> bool:
    """9000, 62xx or 63xx: a response that carries an R-MAC (GP Amd D 6.2.5)."""
    return sw == SW.OK or (sw >> 8) in (0x62, 0x63)


class ApduError(Exception):
    """Raised inside command processing; the card answers with `sw` and no data."""

    def __init__(self, sw: SW, reason: str = "") -> None:
        super().__init__(f"{sw.name} ({sw.value:04X}) {reason}".strip())
        self.sw = sw
