"""The card's identity and per-profile quirks (what `new_card` fixes at manufacturing)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Quirks:
    """Per-profile knobs that real cards differ in."""

    get_status_page: int = 230
    """GET STATUS: most response bytes before 6310 (room left for R-MAC / R-ENC)."""
    default_app_nv: int = 512
    """Non-volatile bytes an instance takes when INSTALL gives no C8."""
    default_app_volatile: int = 128
    """Volatile bytes an instance takes when INSTALL gives no C7."""
    ssd_keys: bytes = bytes(range(0x40, 0x50))
    """Initial key (ENC = MAC = DEK, KVN FF) of a newly installed Supplementary Security Domain."""


@dataclass
class CardIdentity:
    """What the card says about itself: ATR, CPLC, key diversification data, profile name."""

    profile: str
    atr: bytes
    cplc: bytes
    kdd: bytes
    quirks: Quirks = field(default_factory=Quirks)
