"""Service providers' application keys and service data behind the barrier (`KeyService.apps`).

Each call checks the key record's signature, the audit chain and policy before the HSM is touched, and writes
one audit record in the transaction its result leaves from (refusals and failures are audited too), never with
a value in it:

- `mac`: the full AES-CMAC (NIST SP 800-38B) of an SP's application message (a purse top-up) under the per-SE
  application key of an APP_KEY master, derived for the SE's KDD inside the HSM as a non-extractable session
  object and destroyed afterwards (`keyservice.gp.appkey`); purpose SERVICE. The record holds the KDD and the
  SHA-256 of the message;
- `seal`, `unseal`: service data at rest (card numbers) under a DATA_KEY, AES-GCM inside the HSM with the
  caller's context (the service id) as additional data (`keyservice.sealing`); purpose SERVICE or SE_PERSO.
  A value that does not open is `UnsealFailed`. The record holds the SHA-256 of the context.

The per-SE key reaches the card through `ChannelSession.app_key_dgi` at personalisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from globalplatform.keys import KeyAlgorithm
from keyservice import sealing
from keyservice.core import Core
from keyservice.errors import InvalidInput
from keyservice.gp import appkey, hsmops
from keyservice.inventory import KeyUsage
from keyservice.policy import Operation, Request

__all__ = ["Apps"]

CONTEXT_MAX: Final = 256
"""A context names a row (a service id): 1 to 256 bytes."""
_APP_KEYS: Final = frozenset({KeyUsage.APP_KEY})
_DATA_KEYS: Final = frozenset({KeyUsage.DATA_KEY})


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_context(context: bytes) -> None:
    if not 0 < len(context) <= CONTEXT_MAX:
        raise InvalidInput(f"a sealing context (the service id) is 1 to {CONTEXT_MAX} bytes, not {len(context)}")


class Apps:
    """Application MACs for one SE and sealed service data, each for one caller, purpose and target."""

    def __init__(self, core: Callable[[], Core]) -> None:
        self._core = core

    def mac(self, req: Request, label: str, kdd: bytes, data: bytes) -> bytes:
        """The 16-byte AES-CMAC of `data` under the per-SE application key of `label` for the SE with this KDD
        (10 bytes: the first bytes of its INITIALIZE UPDATE response). A card checking 8 bytes takes the first 8."""
        core = self._core()
        rec = core.authorise(req, Operation.MAC, label, chain=True, usages=_APP_KEYS)
        detail = f"kdd={kdd.hex().upper()} data-sha256={_digest(data)}"
        with core.audited(req, Operation.MAC, [(rec.label, rec.kcv)], detail), \
                appkey.per_se_key(core.hsm, core.hsm.hot_handle(label), rec.length, kdd) as key:
            return hsmops.cmac(core.hsm, key, KeyAlgorithm.AES, data)

    def seal(self, req: Request, label: str, plaintext: bytes, context: bytes) -> bytes:
        """nonce (12) ‖ ciphertext ‖ tag (16): `plaintext` sealed under the DATA_KEY `label` for `context`."""
        core = self._core()
        rec = core.authorise(req, Operation.SEAL, label, chain=True, usages=_DATA_KEYS)
        with core.audited(req, Operation.SEAL, [(rec.label, rec.kcv)], f"context-sha256={_digest(context)}"):
            _check_context(context)
            return sealing.seal(core.hsm, core.hsm.hot_handle(label), plaintext, context)

    def unseal(self, req: Request, label: str, sealed: bytes, context: bytes) -> bytes:
        """The plaintext of a value `seal` made with the same key and context; UnsealFailed for a value that was
        changed, sealed for another context or under another key."""
        core = self._core()
        rec = core.authorise(req, Operation.UNSEAL, label, chain=True, usages=_DATA_KEYS)
        with core.audited(req, Operation.UNSEAL, [(rec.label, rec.kcv)], f"context-sha256={_digest(context)}"):
            _check_context(context)
            return sealing.unseal(core.hsm, core.hsm.hot_handle(label), sealed, context)
