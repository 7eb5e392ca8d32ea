"""Keys exchanged with SE vendors: TR-31 / X9.143 key blocks and RFC 3394/5649 wrapped keys, both ways.

The unwrapping key (KBPK, KEK) must be an active KEK of the inventory; the received key becomes a
non-extractable token object with an inventory record (provenance imported-wrapped, state pre-activation),
its KCV checked against the one the vendor supplied. TR-31 header usages map onto inventory usages
(TR-31:2018 Table 6); other usages need an explicit one. Only keys created exportable can be sent, under an
active KEK, by an officer with purpose VENDOR_EXPORT; every export is audited.

Checked before the HSM is touched, each refusal an audited InvalidInput: TR-31 header codes against the
X9.143 tables (`exchange.tr31_header`, both ways); the KEK's algorithm against the method: RFC 3394 §2.2 /
RFC 5649 §4 wrap with AES, a version B key block binds with a TDEA KBPK and D with an AES one (X9.143 Table 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from keyservice import operations, templates
from keyservice.core import Core, with_note
from keyservice.errors import InvalidInput, KcvMismatch, KeyServiceError, PolicyDenied, gp_input
from keyservice.exchange import aeskw, tr31, tr31_header
from keyservice.gp.hsmops import clear_value, same
from keyservice.gp.kcv import kcv as kcv_of
from keyservice.inventory import CAPABILITIES, KeyUsage, Provenance
from keyservice.models import KeyRecord
from keyservice.operations import OperationSpec
from keyservice.policy import Operation, Request
from keyservice.views import KeyView, NewKey

# TR-31:2018 Table 6 usages with a place in a TSM's hierarchy.
TR31_USAGES: Final[dict[str, KeyUsage]] = {
    "K0": KeyUsage.KEK, "K1": KeyUsage.KEK,  # key encryption / key block protection keys
    "E5": KeyUsage.KMC, "E6": KeyUsage.KMC,  # EMV card personalisation / other master keys
}
_TR31_ALGORITHMS: Final[dict[str, KeyAlgorithm]] = {tr31_header.Algorithm.TDES: KeyAlgorithm.DES3,
                                                     tr31_header.Algorithm.AES: KeyAlgorithm.AES}
_TR31_LETTERS: Final = {algorithm: letter for letter, algorithm in _TR31_ALGORITHMS.items()}
_TR31_VERSIONS: Final = {KeyAlgorithm.DES3: tr31_header.VersionId.B, KeyAlgorithm.AES: tr31_header.VersionId.D}


@dataclass(frozen=True)
class Received:
    """Where a received key goes: its label and owner; usage and key ids when the block does not say."""

    label: str
    owner: str
    usage: KeyUsage | None = None
    kvn: int | None = None
    key_id: int | None = None
    lineage: str = ""
    """Appended to the record's note: where the key came from (a ceremony's set marker, so that aborting the
    ceremony destroys the key if it was never activated: `KeyService.components.discard`)."""


def _kek(core: Core, req: Request, label: str) -> KeyRecord:
    """The unwrapping key: policy allows `unwrap` on active KEKs only (policy.RULES)."""
    return core.authorise(req, Operation.UNWRAP, label)


def _aes_kek(kek: KeyRecord) -> None:
    """RFC 3394 §2.2 / RFC 5649 §4: the key-encryption key is an AES key."""
    if kek.algorithm != KeyAlgorithm.AES:
        raise InvalidInput(f"RFC 3394/5649 key wrap needs an AES KEK; {kek.label} is {kek.algorithm}")


def _kbpk_for(version: str, kbpk: KeyRecord) -> None:
    """The KBPK binds with the algorithm of the block's version (X9.143 Table 1: B TDEA, D AES)."""
    need = _TR31_ALGORITHMS[tr31_header.KBPK_ALGORITHM[tr31_header.VersionId(version)]]
    if kbpk.algorithm != need:
        article = "an" if need is KeyAlgorithm.AES else "a"
        raise InvalidInput(f"a TR-31 version {version} key block needs {article} {need} KBPK; "
                           f"{kbpk.label} is {kbpk.algorithm}")


def _expected(kcv_hex: str) -> bytes:
    try:
        value = bytes.fromhex(kcv_hex)
    except ValueError:
        raise InvalidInput("the expected KCV is not valid hex") from None
    if len(value) not in (2, 3, 5):
        raise InvalidInput(f"a KCV is 2, 3 or 5 bytes, not {len(value)}")
    return value


def import_key_block(core: Core, req: Request, kbpk: str, block: str, to: Received,
                     expected_kcv: str) -> KeyView:
    """Verify, decrypt and record a version B/D key block (TR-31:2018 §A.7; X9.143)."""
    kek = _kek(core, req, kbpk)
    try:
        header, _ = tr31.parse_header(block)
        _kbpk_for(header.version, kek)
        usage = to.usage or TR31_USAGES.get(header.usage)
        if usage is None:
            raise InvalidInput(f"TR-31 usage {header.usage} ({header.inventory_usage}) has no inventory usage: "
                               "name one with --usage")
        algorithm = _TR31_ALGORITHMS.get(header.algorithm)
        if algorithm is None:
            raise InvalidInput(f"TR-31 algorithm {header.algorithm!r} is not supported (T, A)")
        kcv = _expected(expected_kcv)
    except KeyServiceError as exc:
        raise core.refuse(req, Operation.IMPORT_WRAPPED, [(kek.label, kek.kcv), (to.label, "")], exc) from None
    note = (f"TR-31 {header.version} usage {header.usage} ({header.inventory_usage}) mode {header.mode} "
            f"key version {header.key_version} exportability {header.exportability} under {kbpk} {to.lineage}").strip()

    def make(cka_id: bytes) -> tuple[int, NewKey]:
        imported = tr31.import_key_block(core.hsm, core.hsm.hot_handle(kbpk), kek.length, block,
                                         label=to.label, cka_id=cka_id, expected_kcv=kcv,
                                         caps=CAPABILITIES[usage])
        return imported.handle, NewKey(to.label, algorithm, imported.length, usage, to.owner, to.kvn, to.key_id,
                                       note)

    return core.create_key(req, Operation.IMPORT_WRAPPED, to.label, usage, Provenance.IMPORTED_WRAPPED, make,
                           used=[(kek.label, kek.kcv)],
                           described=describe_import(kbpk, block.encode(), expected_kcv, to, "tr31"))


def describe_import(kek: str, blob: bytes, expected_kcv: str, to: Received, fmt: str) -> OperationSpec:
    """The canonical description of a vendor import (what its approvers approve)."""
    return operations.import_wrapped(kek, blob, expected_kcv, to.label, to.owner,
                                     to.usage.value if to.usage else None, to.kvn, to.key_id, fmt)


def wrap_format(padding: bool, algorithm: KeyAlgorithm | None = None) -> str:
    """`rfc3394`/`rfc5649` (with the key's algorithm on import) in an operation description."""
    name = f"rfc{'5649' if padding else '3394'}"
    return f"{name} {algorithm.value}" if algorithm else name


def key_block_format(header: KeyBlockHeader) -> str:
    """`tr31 USAGE MODE VERSION EXPORTABILITY` in an operation description."""
    return f"tr31 {header.usage} {header.mode} {header.key_version} {header.exportability}"


def import_wrapped(core: Core, req: Request, kek_label: str, wrapped: bytes, padding: bool,
                   algorithm: KeyAlgorithm, to: Received, expected_kcv: str) -> KeyView:
    """Unwrap an RFC 3394 (`padding` false) or RFC 5649 blob into a recorded token key, KCV checked (GP)."""
    kek = _kek(core, req, kek_label)
    try:
        _aes_kek(kek)
        if to.usage is None:
            raise InvalidInput("a wrapped key carries no usage: name one with --usage")
        usage = to.usage
        expected = _expected(expected_kcv)
        # RFC 3394 §2.2.1 / RFC 5649 §4.1: one semiblock more than the key, whose length (AES 16/24/32,
        # 3DES 16/24) is a multiple of 8; SoftHSM2 records no CKA_VALUE_LEN for unwrapped AES keys
        length = len(wrapped) - aeskw.SEMIBLOCK
        with gp_input():
            key_type = templates.key_type(algorithm, length)
    except KeyServiceError as exc:
        raise core.refuse(req, Operation.IMPORT_WRAPPED, [(kek.label, kek.kcv), (to.label, "")], exc) from None

    def make(cka_id: bytes) -> tuple[int, NewKey]:
        handle = aeskw.unwrap_token_key(core.hsm, core.hsm.hot_handle(kek_label), wrapped, padding=padding,
                                        label=to.label, cka_id=cka_id, key_type=key_type, caps=CAPABILITIES[usage])
        try:
            actual = kcv_of(core.hsm, handle, algorithm, KcvMethod.GP, len(expected))
            if not same(actual, expected):
                raise KcvMismatch("the unwrapped key does not have the KCV the sender gave")
            spec = NewKey(to.label, algorithm, length, usage, to.owner, to.kvn, to.key_id,
                          f"RFC {'5649' if padding else '3394'} under {kek_label} {to.lineage}".strip())
        except BaseException:
            core.hsm.destroy(to.label)
            raise
        return handle, spec

    return core.create_key(req, Operation.IMPORT_WRAPPED, to.label, usage, Provenance.IMPORTED_WRAPPED, make,
                           used=[(kek.label, kek.kcv)],
                           described=describe_import(kek_label, wrapped, expected_kcv, to,
                                                     wrap_format(padding, algorithm)))


@dataclass(frozen=True)
class KeyBlockHeader:
    """What the sender chooses in a TR-31 header (TR-31:2018 §A.5); version and algorithm follow from the keys."""

    usage: str
    mode: str = "N"
    key_version: str = "00"
    exportability: str = "N"

    def __post_init__(self) -> None:
        tr31_header.check_choices(self.usage, self.mode, self.key_version, self.exportability)


def _exportable(core: Core, req: Request, label: str, kek_label: str) -> tuple[KeyRecord, KeyRecord]:
    """The key to send (exportable, policy export-wrapped) and the KEK (policy wrap: an active KEK)."""
    rec = core.authorise(req, Operation.EXPORT_WRAPPED, label)
    if not rec.exportable:
        raise core.refuse(req, Operation.EXPORT_WRAPPED, [(rec.label, rec.kcv)],
                             PolicyDenied(f"{label} was not created exportable; it can never leave the HSM"))
    return rec, core.authorise(req, Operation.WRAP, kek_label)


def export_wrapped(core: Core, req: Request, label: str, kek_label: str, padding: bool) -> bytes:
    """RFC 3394 / RFC 5649 wrap with C_WrapKey: the key leaves the HSM only wrapped (`native_wrap`)."""
    rec, kek = _exportable(core, req, label, kek_label)
    used = [(rec.label, rec.kcv), (kek.label, kek.kcv)]
    clearance = core.clear(req, operations.export_wrapped(label, kek_label, wrap_format(padding)), used)
    try:
        _aes_kek(kek)
        blob = aeskw.wrap_key(core.hsm, core.hsm.hot_handle(kek_label), core.hsm.handle(label),
                              padding=padding, key_length=rec.length)
    except KeyServiceError as exc:
        raise core.refuse(req, Operation.EXPORT_WRAPPED, used, exc) from None
    with core.audit.transaction(core.entry(req, Operation.EXPORT_WRAPPED, used, "ok",
                                           with_note(f"RFC {'5649' if padding else '3394'}", clearance)),
                                anchor=True) as txn:
        clearance.consume(txn.db, txn.seq)
        return blob


def export_key_block(core: Core, req: Request, label: str, kbpk: str, header: KeyBlockHeader) -> str:
    """A TR-31 key block: version B under a 3DES KBPK, D under an AES KBPK (TR-31:2018 §A.7).

    Strategy `host_memory_key_transit` on SoftHSM2 (no key-block mechanism): the exportable key's value
    passes through host memory to be enciphered under the KBEK the HSM derived; KBEK/KBAK stay in the HSM.
    """
    rec, kek = _exportable(core, req, label, kbpk)
    used = [(rec.label, rec.kcv), (kek.label, kek.kcv)]
    clearance = core.clear(req, operations.export_wrapped(label, kbpk, key_block_format(header)), used)
    try:
        version = _TR31_VERSIONS.get(KeyAlgorithm(kek.algorithm))
        letter = _TR31_LETTERS.get(KeyAlgorithm(rec.algorithm))
        if version is None:
            raise InvalidInput(f"a TR-31 KBPK is des3 (version B) or aes (version D); {kbpk} is {kek.algorithm}")
        if letter is None:
            raise InvalidInput(f"TR-31 export carries des3 (T) or aes (A) keys; {label} is {rec.algorithm}")
        full = tr31.Header(str(version), header.usage, str(letter), header.mode, header.key_version,
                           header.exportability)
        value = clear_value(core.hsm, core.hsm.handle(label))
        block = tr31.export_key_block(core.hsm, core.hsm.hot_handle(kbpk), kek.length, full, value)
        del value
    except KeyServiceError as exc:
        raise core.refuse(req, Operation.EXPORT_WRAPPED, used, exc) from None
    with core.audit.transaction(core.entry(req, Operation.EXPORT_WRAPPED, used, "ok",
                                           with_note(f"TR-31 {version} usage {header.usage}", clearance)),
                                anchor=True) as txn:
        clearance.consume(txn.db, txn.seq)
        return block


class VendorExchange:
    """Keys received from and sent to SE vendors (TR-31 key blocks, RFC 3394/5649), each call audited."""

    def __init__(self, core: Callable[[], Core]) -> None:
        self._core = core

    def import_key_block(self, req: Request, kbpk: str, block: str, to: Received, expected_kcv: str) -> KeyView:
        """A TR-31 key block (versions B, D) under the KEK `kbpk`, recorded with its KCV checked."""
        return import_key_block(self._core(), req, kbpk, block, to, expected_kcv)

    def import_wrapped(self, req: Request, kek: str, wrapped: bytes, padding: bool, algorithm: KeyAlgorithm,
                       to: Received, expected_kcv: str) -> KeyView:
        """An RFC 3394 / RFC 5649 wrapped key under the KEK `kek`, recorded with its KCV checked."""
        return import_wrapped(self._core(), req, kek, wrapped, padding, algorithm, to, expected_kcv)

    def export_wrapped(self, req: Request, label: str, kek: str, padding: bool) -> bytes:
        """An exportable key wrapped under a KEK (RFC 3394 / RFC 5649), for an SE vendor."""
        return export_wrapped(self._core(), req, label, kek, padding)

    def export_key_block(self, req: Request, label: str, kbpk: str, header: KeyBlockHeader) -> str:
        """An exportable key as a TR-31 key block (version B under a 3DES KBPK, D under an AES KBPK)."""
        return export_key_block(self._core(), req, label, kbpk, header)
