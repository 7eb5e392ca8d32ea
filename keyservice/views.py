"""What callers of the key service get back and hand in: descriptions, never key values or handles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from globalplatform.keys import KeyAlgorithm, check_length
from keyservice.errors import InvalidInput, gp_input
from keyservice.inventory import KeyUsage, check_algorithm, check_key_length
from keyservice.models import AuditRecord, KeyRecord

LABEL_MAX = 128


@dataclass(frozen=True)
class KeyView:
    """What callers may know about a key: never its value."""

    label: str
    cka_id: str
    algorithm: str
    length: int
    usage: str
    owner: str
    kvn: int | None
    key_id: int | None
    state: str
    kcv: str
    kcv_method: str
    provenance: str
    created_by: str
    created_at: datetime
    state_changed_at: datetime
    exportable: bool
    note: str
    signed: bool = True
    """False when the record's fields are not the ones the key service signed (the key is not used)."""

    @classmethod
    def of(cls, rec: KeyRecord, signed: bool = True) -> KeyView:
        return cls(rec.label, rec.cka_id, rec.algorithm, rec.length, rec.usage, rec.owner, rec.kvn, rec.key_id,
                   rec.state, rec.kcv, rec.kcv_method, rec.provenance, rec.created_by, rec.created_at,
                   rec.state_changed_at, rec.exportable, rec.note, signed)


@dataclass(frozen=True)
class NewKey:
    """Attributes of a key to create; `length` is in bytes, or in modulus bits for RSA (KeyAlgorithm.unit)."""

    label: str
    algorithm: KeyAlgorithm
    length: int
    usage: KeyUsage
    owner: str
    kvn: int | None = None
    key_id: int | None = None
    note: str = ""
    exportable: bool = False

    def __post_init__(self) -> None:
        with gp_input():
            check_length(self.algorithm, self.length)
        check_algorithm(self.usage, self.algorithm)
        check_key_length(self.usage, self.length)
        if self.exportable and self.algorithm is KeyAlgorithm.RSA:
            raise InvalidInput("an RSA private key never leaves the HSM: it cannot be exportable")
        if not self.label or len(self.label) > LABEL_MAX or not self.label.isprintable():
            raise InvalidInput(f"a key label is 1 to {LABEL_MAX} printable characters")
        if not self.owner or len(self.owner) > LABEL_MAX or not self.owner.isprintable():
            raise InvalidInput(f"a key owner is 1 to {LABEL_MAX} printable characters")
        for name, value in (("kvn", self.kvn), ("key_id", self.key_id)):
            if value is not None and not 0 <= value <= 0xFF:
                raise InvalidInput(f"{name} must be 00..FF")


@dataclass(frozen=True)
class PublicKeyView:
    """The public half of an RSA key pair: what PUT KEY sends to a card (GPCS 2.3.1 Table 11-16 'A1', 'A0')."""

    label: str
    modulus: bytes
    exponent: bytes

    @property
    def bits(self) -> int:
        return self.modulus_int.bit_length()

    @property
    def modulus_int(self) -> int:
        return int.from_bytes(self.modulus, "big")

    @property
    def exponent_int(self) -> int:
        return int.from_bytes(self.exponent, "big")


@dataclass(frozen=True)
class ConfirmedReceipt:
    """A card's confirmation of a token-authorised command whose receipt verified (GPCS 2.3.1 §C.5)."""

    counter: int
    """The card's confirmation counter: one more for every receipt it generates."""
    card_unique_data: bytes
    """The CIN (tag '45' of the ISD), else the KDD: which card confirmed."""
    receipt: bytes


@dataclass(frozen=True)
class TokenCheck:
    """Differences between the inventory and the token (`tsm keys check`); each entry names its remedy."""

    missing_on_token: list[str]
    missing_in_inventory: list[str]
    wrong_attributes: list[str]
    untrusted_records: list[str]
    interrupted: list[str]

    @property
    def consistent(self) -> bool:
        return not (self.missing_on_token or self.missing_in_inventory or self.wrong_attributes
                    or self.untrusted_records or self.interrupted)


@dataclass(frozen=True)
class AuditView:
    """One audit record as stored (labels, KCVs, purposes and targets; never key material)."""

    seq: int
    ts: str
    actor: str
    operation: str
    purpose: str
    target: str
    keys: tuple[tuple[str, ...], ...]
    outcome: str
    detail: str

    @classmethod
    def of(cls, row: AuditRecord, keys: list[list[str]]) -> AuditView:
        return cls(row.seq, row.ts, row.actor, row.operation, row.purpose, row.target,
                   tuple(tuple(k) for k in keys), row.outcome, row.detail)


@dataclass(frozen=True)
class VerifyReport:
    """Result of a successful chain verification."""

    records: int
    head_seq: int
    head_hash: str
    acknowledged: tuple[int, ...] = ()
    """Records whose break an officer acknowledged in a reconciliation record (still reported)."""


@dataclass(frozen=True)
class StrategyView:
    """One cryptographic step and the strategy the HSM profile names for it."""

    step: str
    strategy: str
    description: str
    supported: bool
    key_in_host_memory: bool
    mechanisms_present: bool
