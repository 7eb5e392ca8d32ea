"""Delegated Management and DAP behind the barrier (`KeyService.tokens`; GPCS 2.3.1 §C.2-§C.5).

Each call checks the key record's signature, the audit chain and policy before the HSM is touched, and writes
one audit record in the transaction its result leaves from (refusals and failures are audited too):

- `dm_token`: the issuer's token key (TOKEN_KEY, RSA) signs P1 ‖ P2 ‖ Lc ‖ data of an INSTALL, LOAD (through
  INSTALL [for load]) or DELETE an SSD with Delegated Management sends; the record holds the SHA-256 of what
  was signed;
- `verify_receipt`: the receipt key (RECEIPT_KEY, AES or 3DES) checks the card's confirmation of such a command;
  a receipt that does not verify is `MacMismatch`; the record holds the counter and the card unique data;
- `dap_signature`: an SD's DAP key (DAP_KEY: RSA, AES or 3DES) signs a Load File Data Block Hash;
- `public_key`: the public half of an RSA pair (public data: not audited, like `keys.show`).

The keys reach the card by `ChannelSession.put_single_key` (KVN '70' token, '71' receipt, '73' DAP).
The cryptography is `keyservice.gp.dm`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pkcs11.constants import ObjectClass

from globalplatform.keys import KeyAlgorithm
from keyservice.core import Core
from keyservice.errors import InvalidInput, KeyServiceError
from keyservice.gp import dm
from keyservice.models import KeyRecord
from keyservice.policy import Operation, Request
from keyservice.views import ConfirmedReceipt, PublicKeyView

__all__ = ["ConfirmedReceipt", "PublicKeyView", "Tokens"]


class Tokens:
    """DM tokens, receipts and DAP signatures, each for one caller, purpose and target."""

    def __init__(self, core: Callable[[], Core]) -> None:
        self._core = core

    def dm_token(self, req: Request, token_key_label: str, p1: int, p2: int, data: bytes) -> bytes:
        """The Delegated Management token of a command (GPCS 2.3.1 §C.4.1): RSASSA-PKCS1-v1_5 over
        P1 ‖ P2 ‖ Lc ‖ data, SHA-1 for a 1024-bit key, SHA-256 for longer ones.

        `data` is the command data field without the token: for INSTALL everything before the token's length
        byte, for DELETE everything before tag '9E'.
        """
        core = self._core()
        rec = core.authorise(req, Operation.DM_TOKEN, token_key_label, chain=True)
        try:
            message = dm.token_message(p1, p2, data)
        except KeyServiceError as exc:
            raise core.refuse(req, Operation.DM_TOKEN, [(rec.label, rec.kcv)], exc) from None
        detail = f"p1={p1:02X} p2={p2:02X} data-sha256={hashlib.sha256(message).hexdigest()}"
        with core.audited(req, Operation.DM_TOKEN, [(rec.label, rec.kcv)], detail):
            return _sign(core, rec, message)

    def verify_receipt(self, req: Request, receipt_key_label: str, receipt_data: bytes,
                       confirmation: bytes) -> ConfirmedReceipt:
        """Verify the card's confirmation of a token-authorised command (GPCS 2.3.1 §C.5).

        `confirmation` is the response data without SW (L ‖ Lr ‖ receipt ‖ confirmation data); `receipt_data`
        is what the command makes the card confirm (e.g. LV(load file AID) ‖ LV(SD AID) for a LOAD). MacMismatch
        when the receipt does not verify; InvalidInput when there is no confirmation or it is malformed.
        """
        core = self._core()
        rec = core.authorise(req, Operation.VERIFY_RECEIPT, receipt_key_label, chain=True)
        used = [(rec.label, rec.kcv)]
        try:
            parsed = dm.parse_confirmation(confirmation)
        except KeyServiceError as exc:
            raise core.refuse(req, Operation.VERIFY_RECEIPT, used, exc) from None
        detail = f"counter={parsed.counter:04X} card={parsed.card_unique_data.hex().upper()}"
        with core.audited(req, Operation.VERIFY_RECEIPT, used, detail):
            handle = core.hsm.hot_handle(rec.label)
            dm.verify_receipt(core.hsm, handle, KeyAlgorithm(rec.algorithm), parsed, receipt_data)
        return ConfirmedReceipt(parsed.counter, parsed.card_unique_data, parsed.receipt)

    def dap_signature(self, req: Request, dap_key_label: str, load_file_hash: bytes) -> bytes:
        """The DAP of a load file (GPCS 2.3.1 §C.2, §C.3) by an SD's DAP key: the RSA signature of the Load File
        Data Block Hash (hash as for tokens), or its AES-CMAC (16 bytes) or full 3DES MAC (8 bytes)."""
        core = self._core()
        rec = core.authorise(req, Operation.DAP_SIGNATURE, dap_key_label, chain=True)
        with core.audited(req, Operation.DAP_SIGNATURE, [(rec.label, rec.kcv)],
                          f"hash={load_file_hash.hex().upper()}"):
            dm.check_hash(load_file_hash)
            algorithm = KeyAlgorithm(rec.algorithm)
            if algorithm is KeyAlgorithm.RSA:
                return _sign(core, rec, load_file_hash)
            return dm.mac(core.hsm, core.hsm.hot_handle(rec.label), algorithm, load_file_hash)

    def public_key(self, label: str) -> PublicKeyView:
        """The public half of an RSA key pair in the inventory (modulus and exponent; public data)."""
        core = self._core()
        with core.sessions() as db:
            rec = core.record(db, label)
        if rec.algorithm != KeyAlgorithm.RSA:
            raise InvalidInput(f"{label} is {rec.algorithm}, not an RSA key pair")
        modulus, exponent = core.hsm.public_key(label)
        return PublicKeyView(label, modulus, exponent)


def _sign(core: Core, rec: KeyRecord, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 by the private key of `rec`, with the hash its size calls for."""
    private = core.hsm.handle(rec.label, ObjectClass.PRIVATE_KEY)
    return dm.rsa_sign(core.hsm, private, dm.signature_hash(rec.length), message)
