"""Life-cycle states and their transitions (GPCS 2.3.1 chapter 5, coding in 11.1.1)."""

from __future__ import annotations

from enum import IntEnum, unique
from typing import Final


@unique
class CardLifeCycle(IntEnum):
    """Card life cycle, GPCS 2.3.1 5.1.1."""

    OP_READY = 0x01
    """Runtime environment ready; ISD selectable; first state after pre-issuance."""
    INITIALIZED = 0x07
    """Initial data (keys) set; irreversible."""
    SECURED = 0x0F
    """Post-issuance state; card content management under the issuer's security policy."""
    CARD_LOCKED = 0x7F
    """Only the ISD is selectable; reversible back to SECURED."""
    TERMINATED = 0xFF
    """End of life; only GET DATA answered."""


@unique
class AppLifeCycle(IntEnum):
    """Application life cycle, GPCS 2.3.1 5.3.1 (b8 set = LOCKED on top of the state)."""

    INSTALLED = 0x03
    """Installed, not yet selectable."""
    SELECTABLE = 0x07
    """Selectable; application-specific states keep b1-b3 set."""
    PERSONALIZED = 0x0F
    """Application-specific state used by the demo applets and by SDs (GPCS 5.3.2.3)."""
    LOCKED = 0x80
    """Bit added to the current state while locked (GPCS 5.3.1.4)."""


@unique
class ElfLifeCycle(IntEnum):
    """Executable Load File life cycle, GPCS 2.3.1 5.2."""

    LOADED = 0x01
    """The only state an Executable Load File has."""


#: Card life-cycle transitions SET STATUS may request (GPCS 2.3.1 5.1.1, Figure 5-1). OP_READY → SECURED is
#: allowed as a shortcut (INITIALIZED is optional per 5.1.1.2). Every state but TERMINATED may go to TERMINATED.
CARD_TRANSITIONS: Final[dict[CardLifeCycle, frozenset[CardLifeCycle]]] = {
    CardLifeCycle.OP_READY: frozenset({CardLifeCycle.INITIALIZED, CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.INITIALIZED: frozenset({CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.SECURED: frozenset({CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.CARD_LOCKED: frozenset({CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.TERMINATED: frozenset(),
}


def card_transition_allowed(current: CardLifeCycle, new: CardLifeCycle) -> bool:
    """True when GPCS 2.3.1 5.1.1 allows `current` → `new`."""
    return new in CARD_TRANSITIONS[current]


def is_locked(state: int) -> bool:
    """An application or SD state with the LOCKED bit (b8)."""
    return bool(state & AppLifeCycle.LOCKED)


def app_transition_allowed(current: int, new: int) -> bool:
    """SET STATUS on an application/SD (GPCS 2.3.1 5.3.1, 11.10.2.2): only forward, from a selectable state.

    `new` must keep b1-b3 set (SELECTABLE or an application-specific state) and not go back below the current
    state; LOCKED is handled separately by the caller.
    """
    base = current & ~AppLifeCycle.LOCKED
    selectable = AppLifeCycle.SELECTABLE
    forward = base <= new < AppLifeCycle.LOCKED
    return forward and base & selectable == selectable and new & selectable == selectable
