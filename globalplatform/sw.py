"""Status words: SW -> category, meaning and the typed error raised for it.

Categories follow ISO/IEC 7816-4 §5.6 (Table 5): '9000' and '61XX' normal processing, '62XX'/'63XX'
warnings, '64XX'-'66XX' execution errors, '67XX'-'6FXX' checking errors. The GlobalPlatform meanings are
those of GPCS 2.3.1 §11.1.3 (general error conditions, Table 11-10) and the per-command response tables of
§11.2-§11.11; '94XX' are GP application errors (§11.8.3, PUT KEY).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, unique
from typing import Final

from globalplatform.errors import (
    CardExecutionError,
    CardMemoryError,
    CardStatusError,
    ConditionsNotSatisfied,
    FunctionNotSupported,
    ReferencedDataNotFound,
    SecurityStatusNotSatisfied,
    WrongLengthOrParameters,
)


@unique
class SwCategory(Enum):
    """ISO 7816-4 §5.6 Table 5 groups (plus GP application errors)."""

    NORMAL = "normal processing"
    WARNING = "warning processing"
    EXECUTION_ERROR = "execution error"
    CHECKING_ERROR = "checking error"
    APPLICATION_ERROR = "application error"


@unique
class Sw(IntEnum):
    """Status words the TSM reacts to by value."""

    SUCCESS = 0x9000
    """ISO 7816-4 §5.6: normal processing, no further qualification."""
    MORE_DATA = 0x6310
    """GPCS 2.3.1 §11.4.3: more data available (GET STATUS, GET DATA: repeat with P2 'next')."""


@unique
class Sw1(IntEnum):
    """First status bytes whose second byte is a parameter (ISO 7816-4 §5.6)."""

    BYTES_REMAINING = 0x61
    """SW2 response bytes are still available: send GET RESPONSE with Le = SW2 (ISO 7816-4 §5.1.3)."""
    WRONG_LE = 0x6C
    """Wrong Le field; SW2 gives the exact number of available bytes: repeat with Le = SW2."""
    WARNING_NV_UNCHANGED = 0x62
    WARNING_NV_CHANGED = 0x63
    ERROR_NV_UNCHANGED = 0x64
    ERROR_NV_CHANGED = 0x65
    ERROR_SECURITY = 0x66
    SUCCESS = 0x90
    GP_APPLICATION = 0x94


@dataclass(frozen=True)
class SwInfo:
    """What a status word means and which error it raises (None for non-error status words)."""

    sw: int
    category: SwCategory
    meaning: str
    error: type[CardStatusError] | None


_N, _W, _E, _C, _A = (
    SwCategory.NORMAL,
    SwCategory.WARNING,
    SwCategory.EXECUTION_ERROR,
    SwCategory.CHECKING_ERROR,
    SwCategory.APPLICATION_ERROR,
)

SW_TABLE: Final[dict[int, SwInfo]] = {
    info.sw: info
    for info in (
        SwInfo(0x9000, _N, "Success", None),
        SwInfo(0x6200, _W, "Logical channel already closed", None),
        SwInfo(0x6283, _W, "Card life cycle state is CARD_LOCKED", ConditionsNotSatisfied),
        SwInfo(0x6310, _W, "More data available", None),
        SwInfo(0x6400, _E, "No specific diagnosis", CardExecutionError),
        SwInfo(0x6581, _E, "Memory failure", CardMemoryError),
        SwInfo(0x6700, _C, "Wrong length in Lc", WrongLengthOrParameters),
        SwInfo(0x6881, _C, "Logical channel not supported or not active", FunctionNotSupported),
        SwInfo(0x6882, _C, "Secure messaging not supported", SecurityStatusNotSatisfied),
        SwInfo(0x6982, _C, "Security status not satisfied", SecurityStatusNotSatisfied),
        SwInfo(0x6985, _C, "Conditions of use not satisfied", ConditionsNotSatisfied),
        SwInfo(0x6999, _C, "Applet selection failed", ConditionsNotSatisfied),
        SwInfo(0x6A80, _C, "Incorrect values in command data", WrongLengthOrParameters),
        SwInfo(
            0x6A81,
            _C,
            "Function not supported, e.g. card life cycle state is CARD_LOCKED",
            FunctionNotSupported,
        ),
        SwInfo(0x6A82, _C, "Application or file not found", ReferencedDataNotFound),
        SwInfo(0x6A84, _C, "Not enough memory space", CardMemoryError),
        SwInfo(0x6A86, _C, "Incorrect P1 P2", WrongLengthOrParameters),
        SwInfo(0x6A88, _C, "Referenced data not found", ReferencedDataNotFound),
        SwInfo(0x6D00, _C, "Invalid instruction", FunctionNotSupported),
        SwInfo(0x6E00, _C, "Invalid class", FunctionNotSupported),
        SwInfo(0x6F00, _C, "No precise diagnosis", CardExecutionError),
        SwInfo(0x9484, _A, "Algorithm not supported", CardExecutionError),
        SwInfo(0x9485, _A, "Invalid key check value", CardExecutionError),
    )
}
"""Exact status words, GPCS 2.3.1 §11.1.3 Table 11-10 and the command sections of §11."""


def _category_of(sw1: int) -> SwCategory:
    if sw1 in (Sw1.SUCCESS, Sw1.BYTES_REMAINING):
        return _N
    if sw1 in (Sw1.WARNING_NV_UNCHANGED, Sw1.WARNING_NV_CHANGED):
        return _W
    if sw1 in (Sw1.ERROR_NV_UNCHANGED, Sw1.ERROR_NV_CHANGED, Sw1.ERROR_SECURITY):
        return _E
    if sw1 == Sw1.GP_APPLICATION:
        return _A
    return _C


def lookup(sw: int) -> SwInfo:
    """Meaning of any status word: the exact table first, then the ISO 7816-4 §5.6 ranges."""
    known = SW_TABLE.get(sw)
    if known is not None:
        return known
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == Sw1.BYTES_REMAINING:
        return SwInfo(sw, _N, f"{sw2 or 256} response bytes still available", None)
    if sw1 == Sw1.WRONG_LE:
        return SwInfo(sw, _C, f"Wrong Le; {sw2 or 256} bytes available", WrongLengthOrParameters)
    category = _category_of(sw1)
    if category in (_N, _W):
        return SwInfo(sw, category, f"{category.value} ({sw:04X})", None)
    return SwInfo(sw, category, f"{category.value} ({sw:04X})", CardExecutionError)


def check(sw: int, *, accept: tuple[int, ...] = (Sw.SUCCESS,)) -> None:
    """Raise the typed error for `sw` unless it is in `accept`.

    Warnings without a specific error (e.g. '6310') also raise, as `CardExecutionError`, unless accepted:
    a caller that can continue after a warning says so explicitly.
    """
    if sw in accept:
        return
    info = lookup(sw)
    raise (info.error or CardExecutionError)(sw, info.meaning)


def is_protected_response(sw: int) -> bool:
    """'9000' or a warning ('62xx', '63xx'): the status words whose response carries R-MAC / R-ENC
    (Amd D §6.2.5; an error status word comes alone)."""
    return sw == Sw.SUCCESS or sw >> 8 in (Sw1.WARNING_NV_UNCHANGED, Sw1.WARNING_NV_CHANGED)
