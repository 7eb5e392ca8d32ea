"""Secure Channel Protocols: identifiers, "i" parameters and security levels (GPCS 2.3.1 Annex E; Amd D §5).

`check_level` is the host-side rule that a security level must be one the protocol and the card's "i" allow,
so that a level the card would refuse (and may count as a failed authentication) is never sent.
"""

from __future__ import annotations

from enum import IntFlag, StrEnum, unique
from typing import Final

from globalplatform.errors import InvalidParameter


@unique
class Scp(StrEnum):
    """Secure Channel Protocol identifier (GPCS 2.3.1 §E.1, Amd D §5), as written in key information."""

    SCP02 = "02"
    SCP03 = "03"

    @property
    def number(self) -> int:
        """The identifier byte of the key information (02, 03)."""
        return int(self.value, 16)


@unique
class SecurityLevel(IntFlag):
    """P1 of EXTERNAL AUTHENTICATE (GPCS 2.3.1 Table 11-62 / E-11; Amd D Table 7-4)."""

    NONE = 0x00
    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20


@unique
class Scp02Option(IntFlag):
    """Bits of the SCP02 "i" parameter (GPCS 2.3.1 Table E-1)."""

    THREE_KEYS = 0x01
    CMAC_ON_UNMODIFIED_APDU = 0x02
    EXPLICIT_INITIATION = 0x04
    ICV_MAC_OVER_AID = 0x08
    ICV_ENCRYPTION = 0x10
    RMAC_SUPPORT = 0x20
    PSEUDO_RANDOM_CHALLENGE = 0x40


@unique
class Scp03Option(IntFlag):
    """Bits of the SCP03 "i" parameter (Amd D §5.1, Table 5-1)."""

    PSEUDO_RANDOM_CHALLENGE = 0x10
    RMAC_SUPPORT = 0x20
    RENC_SUPPORT = 0x40


VALID_LEVELS: Final = frozenset({0x00, 0x01, 0x03, 0x11, 0x13, 0x33})
"""Security levels of EXTERNAL AUTHENTICATE (GPCS 2.3.1 §E.5.2.2; Amd D §7.1.2.1 adds 33)."""
SCP02_DEFAULT_I: Final = 0x55
"""The "i" assumed for SCP02 when the card does not say (GPCS 2.3.1 §E.1.1: the usual 3-key implicit option)."""


def security_level(level: int) -> SecurityLevel:
    """`level` as a SecurityLevel, or InvalidParameter when EXTERNAL AUTHENTICATE has no such level."""
    if level not in VALID_LEVELS:
        raise InvalidParameter(f"security level {level:02X} is not one of 00, 01, 03, 11, 13, 33")
    return SecurityLevel(level)


def check_level(scp: Scp, i: int | None, level: int) -> SecurityLevel:
    """`level` as a SecurityLevel, or InvalidParameter when the protocol or the card's "i" does not allow it.

    SCP02 has no R-ENCRYPTION (GPCS 2.3.1 §E.5.2.2); SCP03 offers R-MAC only with "i" b6 and R-ENCRYPTION only
    with "i" b7 (Amd D §5.1, §7.1.2.1). `i` None means the card did not say: only the protocol's rule applies.
    """
    wanted = security_level(level)
    if scp is Scp.SCP02 and wanted & SecurityLevel.R_ENCRYPTION:
        raise InvalidParameter(f"security level {level:02X} asks for R-ENCRYPTION, which SCP02 does not have")
    if scp is Scp.SCP03 and i is not None:
        if wanted & SecurityLevel.R_MAC and not i & Scp03Option.RMAC_SUPPORT:
            raise InvalidParameter(f"security level {level:02X} asks for R-MAC; the card's SCP03 i={i:02X} "
                                   "does not offer it")
        if wanted & SecurityLevel.R_ENCRYPTION and not i & Scp03Option.RENC_SUPPORT:
            raise InvalidParameter(f"security level {level:02X} asks for R-ENCRYPTION; the card's SCP03 "
                                   f"i={i:02X} does not offer it")
    return wanted
