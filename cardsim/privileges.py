"""Privileges, 3 bytes (GPCS 2.3.1 11.1.2, Tables 11-7, 11-8 and 11-9), as one 24-bit flag set."""

from __future__ import annotations

from enum import IntFlag, unique

from cardsim.sw import SW, ApduError


@unique
class Privilege(IntFlag):
    """Byte 1 = bits 23-16, byte 2 = bits 15-8, byte 3 = bits 7-0."""

    NONE = 0
    SECURITY_DOMAIN = 0x800000
    """Byte 1 b8: the application is a Security Domain (Table 11-7)."""
    DAP_VERIFICATION = 0x400000
    """Byte 1 b7 (with b8): SD verifies DAPs of load files it receives."""
    DELEGATED_MANAGEMENT = 0x200000
    """Byte 1 b6 (with b8): card content changes need a token (GPCS 9.1.5, C.4)."""
    CARD_LOCK = 0x100000
    """Byte 1 b5: may lock the card."""
    CARD_TERMINATE = 0x080000
    """Byte 1 b4: may terminate the card."""
    CARD_RESET = 0x040000
    """Byte 1 b3: default selected / card reset."""
    CVM_MANAGEMENT = 0x020000
    """Byte 1 b2: CVM management."""
    MANDATED_DAP_VERIFICATION = 0x010000
    """Byte 1 b1 (with b8 b7): verifies every load file's DAP."""
    TRUSTED_PATH = 0x008000
    """Byte 2 b8 (Table 11-8)."""
    AUTHORIZED_MANAGEMENT = 0x004000
    """Byte 2 b7: card content management without tokens."""
    TOKEN_VERIFICATION = 0x002000
    """Byte 2 b6: verifies DM tokens (the ISD's token key)."""
    GLOBAL_DELETE = 0x001000
    """Byte 2 b5."""
    GLOBAL_LOCK = 0x000800
    """Byte 2 b4: may lock any application."""
    GLOBAL_REGISTRY = 0x000400
    """Byte 2 b3."""
    FINAL_APPLICATION = 0x000200
    """Byte 2 b2."""
    GLOBAL_SERVICE = 0x000100
    """Byte 2 b1."""
    RECEIPT_GENERATION = 0x000080
    """Byte 3 b8 (Table 11-9): generates receipts (GPCS C.5)."""
    CIPHERED_LOAD_FILE = 0x000040
    """Byte 3 b7."""
    CONTACTLESS_ACTIVATION = 0x000020
    """Byte 3 b6."""
    CONTACTLESS_SELF_ACTIVATION = 0x000010
    """Byte 3 b5."""

    def to_bytes3(self) -> bytes:
        """The 3-byte privileges field."""
        return int(self).to_bytes(3, "big")

    @classmethod
    def from_field(cls, field: bytes) -> Privilege:
        """Decode a 1- or 3-byte privileges field of INSTALL (GPCS 2.3.1 11.5.2.3.2); 6A80 otherwise.

        Bits that need b8 (SD) are refused without it, like a card does (Table 11-7 notes).
        """
        if len(field) == 1:
            value = field[0] << 16
        elif len(field) == 3:
            value = int.from_bytes(field, "big")
        else:
            raise ApduError(SW.WRONG_DATA, "privileges must be 1 or 3 bytes")
        privileges = cls(value)
        sd_only = cls.DAP_VERIFICATION | cls.DELEGATED_MANAGEMENT | cls.MANDATED_DAP_VERIFICATION
        if privileges & sd_only and not privileges & cls.SECURITY_DOMAIN:
            raise ApduError(SW.WRONG_DATA, "SD-only privilege without the Security Domain privilege")
        return privileges
