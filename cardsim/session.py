"""Volatile per-session state the card keeps between commands (cleared by SELECT and power-on)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ForcedChallenge:
    """TEST ONLY: the next INITIALIZE UPDATE uses this card challenge and sequence counter."""

    card_challenge: bytes
    sequence_counter: int | None


@dataclass
class PendingLoad:
    """Volatile state between INSTALL [for load] and the last LOAD block (GPCS 2.3.1 11.6.2)."""

    elf_aid: bytes
    sd_aid: bytes
    hash: bytes
    nv_hint: int
    receipt_data: bytes | None
    """Receipt data (GPCS C.5) when the load runs under Delegated Management, else None."""
    next_block: int = 0
    data: bytes = b""
