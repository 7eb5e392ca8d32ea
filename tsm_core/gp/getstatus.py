"""The GlobalPlatform Registry as seen through GET STATUS (GPCS 2.3.1 §11.4.3), with typed life-cycle states
and privileges (GPCS 2.3.1 §11.1.1 life-cycle coding, §11.1.2 privileges; Tables 11-4..11-9).

Two response formats are parsed: the TLV format (P2 '02', one 'E3' template per entry, Table 11-36) and the
legacy format (P2 '00', Tables 11-37/11-38: length-prefixed AID, life-cycle byte, privileges byte, and for
P1 '10' the Executable Modules).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag, unique

from globalplatform import tlv
from globalplatform.errors import StatusParseError, TlvError


@unique
class StatusSubset(IntEnum):
    """GET STATUS P1: which part of the Registry to list (GPCS 2.3.1 §11.4.2.1 Table 11-32)."""

    ISD = 0x80
    """The Issuer Security Domain only; its life cycle is the card life cycle."""
    APPLICATIONS = 0x40
    """Applications, including Security Domains."""
    LOAD_FILES = 0x20
    """Executable Load Files."""
    LOAD_FILES_AND_MODULES = 0x10
    """Executable Load Files and their Executable Modules."""


@unique
class CardLifeCycle(IntEnum):
    """Card life-cycle states, reported as the ISD's life cycle (GPCS 2.3.1 §11.1.1, §5.1.1)."""

    OP_READY = 0x01
    INITIALIZED = 0x07
    SECURED = 0x0F
    CARD_LOCKED = 0x7F
    TERMINATED = 0xFF


@unique
class LoadFileLifeCycle(IntEnum):
    """Executable Load File life-cycle state (GPCS 2.3.1 §11.1.1, §5.2)."""

    LOADED = 0x01


@unique
class ApplicationLifeCycle(IntEnum):
    """Application life-cycle states (GPCS 2.3.1 §11.1.1, §5.3.1).

    In SELECTABLE, b7..b4 may carry application-specific states ('0xxxx111'); `base_state` strips them.
    """

    INSTALLED = 0x03
    SELECTABLE = 0x07
    LOCKED = 0x83
    """b8 set on top of the state the application had when it was locked."""


@unique
class SecurityDomainLifeCycle(IntEnum):
    """Security Domain life-cycle states (GPCS 2.3.1 §11.1.1, §5.3.2)."""

    INSTALLED = 0x03
    SELECTABLE = 0x07
    PERSONALIZED = 0x0F
    LOCKED = 0x83


LOCKED_BIT = 0x80
"""b8 of an application or SD life-cycle byte: LOCKED (GPCS 2.3.1 §11.1.1)."""
PRIVILEGE_BYTE1_MASK = 0xFF0000
"""Privileges byte 1 within the 3-byte value: the only byte of the legacy 1-byte form."""
APPLICATION_SPECIFIC_MASK = 0x78
"""b7..b4 of a SELECTABLE application's life-cycle byte: application-specific (GPCS 2.3.1 §11.1.1)."""


@unique
class Privilege(IntFlag):
    """Privileges, three bytes read as one big-endian integer (GPCS 2.3.1 §11.1.2, byte 1 b8 = 0x800000).

    Some privileges are defined as a combination of bits (DAP Verification = b8+b7 of byte 1, Delegated
    Management = b8+b6, Mandated DAP Verification = b8+b7+b1): each member is one bit, as on the wire.
    """

    SECURITY_DOMAIN = 0x800000
    DAP_VERIFICATION = 0x400000
    DELEGATED_MANAGEMENT = 0x200000
    CARD_LOCK = 0x100000
    CARD_TERMINATE = 0x080000
    CARD_RESET = 0x040000
    """Default Selected in GP 2.1.1."""
    CVM_MANAGEMENT = 0x020000
    MANDATED_DAP_VERIFICATION = 0x010000
    TRUSTED_PATH = 0x008000
    AUTHORIZED_MANAGEMENT = 0x004000
    TOKEN_VERIFICATION = 0x002000
    GLOBAL_DELETE = 0x001000
    GLOBAL_LOCK = 0x000800
    GLOBAL_REGISTRY = 0x000400
    FINAL_APPLICATION = 0x000200
    GLOBAL_SERVICE = 0x000100
    RECEIPT_GENERATION = 0x000080
    CIPHERED_LOAD_FILE_DATA_BLOCK = 0x000040
    CONTACTLESS_ACTIVATION = 0x000020
    CONTACTLESS_SELF_ACTIVATION = 0x000010

    @classmethod
    def decode(cls, raw: bytes) -> Privilege:
        """Decode the 1-byte (legacy, byte 1 only) or 3-byte privileges field; RFU bits are rejected."""
        if len(raw) not in (1, 3):
            raise StatusParseError(f"privileges are 1 or 3 bytes, got {len(raw)}")
        value = int.from_bytes(raw.ljust(3, b"\x00"), "big")
        unknown = value & ~sum(cls)
        if unknown:
            raise StatusParseError(f"RFU privilege bits set: {unknown:06X}")
        return cls(value)

    @property
    def fits_byte1(self) -> bool:
        """Whether only byte 1 bits are set, so the 1-byte form may be used."""
        return not int(self) & ~PRIVILEGE_BYTE1_MASK

    def encode(self, *, short: bool = False) -> bytes:
        """Three bytes, or only byte 1 when `short` (legal only if bytes 2 and 3 are zero)."""
        raw = int(self).to_bytes(3, "big")
        if short:
            if not self.fits_byte1:
                raise StatusParseError("privileges beyond byte 1 need the 3-byte form")
            return raw[:1]
        return raw


@dataclass(frozen=True)
class StatusEntry:
    """One Registry entry from GET STATUS: an ISD, application/SD, or Executable Load File."""

    subset: StatusSubset
    aid: bytes
    life_cycle: int
    """The raw life-cycle byte; see `state` for the typed value."""
    privileges: Privilege
    elf_aid: bytes | None = None
    elf_version: bytes | None = None
    associated_sd_aid: bytes | None = None
    modules: tuple[bytes, ...] = ()
    implicit_selection: tuple[bytes, ...] = ()
    """'CF' values, one per interface/logical channel the entry is implicitly selectable on."""

    @property
    def is_security_domain(self) -> bool:
        """Whether this entry is a Security Domain (privilege byte 1 b8)."""
        return Privilege.SECURITY_DOMAIN in self.privileges

    @property
    def state(self) -> CardLifeCycle | LoadFileLifeCycle | ApplicationLifeCycle | SecurityDomainLifeCycle:
        """The typed life-cycle state for this kind of entry (GPCS 2.3.1 §11.1.1)."""
        try:
            if self.subset == StatusSubset.ISD:
                return CardLifeCycle(self.life_cycle)
            if self.subset in (StatusSubset.LOAD_FILES, StatusSubset.LOAD_FILES_AND_MODULES):
                return LoadFileLifeCycle(self.life_cycle)
            if self.is_security_domain:
                return SecurityDomainLifeCycle(self._base_state())
            return ApplicationLifeCycle(self._base_state())
        except ValueError:
            raise StatusParseError(
                f"life-cycle byte {self.life_cycle:02X} is not valid for {self.subset.name}"
            ) from None

    @property
    def application_specific_state(self) -> int:
        """b7..b4 of a SELECTABLE application's life cycle, shifted down (0 when none)."""
        return (self.life_cycle & APPLICATION_SPECIFIC_MASK) >> 3

    def _base_state(self) -> int:
        if self.life_cycle & LOCKED_BIT:
            return ApplicationLifeCycle.LOCKED
        if self.is_security_domain:
            return self.life_cycle
        selectable = ApplicationLifeCycle.SELECTABLE
        return selectable if self.life_cycle & selectable == selectable else self.life_cycle


def _one(entry: tlv.Decoded, name: str, *, required: bool) -> bytes | None:
    found = tlv.find(entry, name)
    if len(found) > 1:
        raise StatusParseError(f"'{name}' appears {len(found)} times in one E3 entry")
    if not found:
        if required:
            raise StatusParseError(f"E3 entry without '{name}'")
        return None
    value = found[0]
    if not isinstance(value, bytes):
        raise StatusParseError(f"'{name}' is not a primitive data object")
    return value


def _all(entry: tlv.Decoded, name: str) -> tuple[bytes, ...]:
    return tuple(value for value in tlv.find(entry, name) if isinstance(value, bytes))


def parse_tlv(subset: StatusSubset, data: bytes) -> list[StatusEntry]:
    """Parse a TLV-format GET STATUS response: concatenated 'E3' templates (GPCS 2.3.1 Table 11-36)."""
    entries: list[StatusEntry] = []
    try:
        items = tlv.decode_all(data)
        decoded = [tlv.REGISTRY_DATA.decode_value(item) for item in items]
    except TlvError as exc:
        raise StatusParseError(f"GET STATUS TLV response: {exc}") from exc
    for entry in decoded:
        aid = _one(entry, "aid", required=True)
        lc = _one(entry, "life_cycle_state", required=True)
        privileges = _one(entry, "privileges", required=False)
        entries.append(
            StatusEntry(
                subset=subset,
                aid=aid or b"",
                life_cycle=lc[0] if lc else 0,
                privileges=Privilege.decode(privileges) if privileges else Privilege(0),
                elf_aid=_one(entry, "elf_aid", required=False),
                elf_version=_one(entry, "elf_version", required=False),
                associated_sd_aid=_one(entry, "associated_sd_aid", required=False),
                modules=_all(entry, "module_aid"),
                implicit_selection=_all(entry, "implicit_selection"),
            )
        )
    return entries


def parse_legacy(subset: StatusSubset, data: bytes) -> list[StatusEntry]:
    """Parse a legacy-format GET STATUS response (GPCS 2.3.1 §11.4.3.2, Tables 11-37 and 11-38)."""
    entries: list[StatusEntry] = []
    offset = 0
    while offset < len(data):
        aid_len = data[offset]
        head_end = offset + 1 + aid_len + 2
        if head_end > len(data):
            raise StatusParseError(f"legacy GET STATUS: entry at {offset} is truncated")
        aid = data[offset + 1 : offset + 1 + aid_len]
        life_cycle, privileges = data[head_end - 2], data[head_end - 1]
        offset = head_end
        modules: list[bytes] = []
        if subset == StatusSubset.LOAD_FILES_AND_MODULES:
            if offset >= len(data):
                raise StatusParseError("legacy GET STATUS: missing number of Executable Modules")
            count = data[offset]
            offset += 1
            for _ in range(count):
                if offset >= len(data) or offset + 1 + data[offset] > len(data):
                    raise StatusParseError("legacy GET STATUS: Executable Module AID truncated")
                modules.append(data[offset + 1 : offset + 1 + data[offset]])
                offset += 1 + data[offset]
        entries.append(
            StatusEntry(
                subset=subset,
                aid=aid,
                life_cycle=life_cycle,
                privileges=Privilege.decode(bytes((privileges,))),
                modules=tuple(modules),
            )
        )
    return entries
