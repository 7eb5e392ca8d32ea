"""Data Authentication Pattern verification on LOAD (GPCS 2.3.1 9.2.1, 11.6.2.3, C.2/C.3).

Scheme implemented (symmetric): an SD with the DAP Verification privilege — and every SD with Mandated DAP
Verification — needs a DAP block E2 { 4F SD AID, C3 signature } in the first LOAD block, where the signature
is computed with that SD's DAP key (KVN 73, key 01) over the Load File Data Block Hash: AES-CMAC (16 bytes)
for an AES key, full 3DES MAC (ISO 9797-1 alg. 1, M2 padding, 8 bytes) for a DES key. The card computes the
hash itself: with the algorithm implied by the hash length in INSTALL [for load] (SHA-1/256/384/512), SHA-256
when INSTALL [for load] had none.
"""

from __future__ import annotations

import hashlib
from typing import Final

from cardsim.keys import KeyType, ReservedKvn
from cardsim.primitives import aes_cmac, des3_mac, equal
from cardsim.privileges import Privilege
from cardsim.registry import Registry
from cardsim.sw import SW, ApduError

HASHES: Final = {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}


def load_file_hash(lfdb: bytes, declared: bytes) -> bytes:
    """Hash of the Load File Data Block; 6A80 when INSTALL [for load] declared a different one."""
    if declared and len(declared) not in HASHES:
        raise ApduError(SW.WRONG_DATA, "unsupported hash length")
    digest = hashlib.new(HASHES[len(declared)] if declared else "sha256", lfdb).digest()
    if declared and not equal(digest, declared):
        raise ApduError(SW.WRONG_DATA, "Load File Data Block Hash mismatch")
    return digest


def dap_signature(key_type: KeyType, key: bytes, lfdb_hash: bytes) -> bytes:
    """The DAP a verifying SD expects."""
    if key_type is KeyType.AES:
        return aes_cmac(key, lfdb_hash)
    return des3_mac(key, lfdb_hash)


def verify(registry: Registry, target_sd: bytes, lfdb_hash: bytes, blocks: dict[bytes, bytes]) -> None:
    """Check every DAP the load needs; 6982 when one is missing or wrong (GPCS 2.3.1 11.6.3.2)."""
    for sd in registry.apps.values():
        needs = (sd.aid == target_sd and sd.privileges & Privilege.DAP_VERIFICATION) or (
            sd.privileges & Privilege.MANDATED_DAP_VERIFICATION
        )
        if not needs or sd.sd is None:
            continue
        keyset = sd.sd.keysets.get(ReservedKvn.DAP)
        key = keyset.get(1) if keyset else None
        signature = blocks.get(sd.aid)
        if key is None or signature is None:
            raise ApduError(SW.SECURITY_STATUS, "DAP block or DAP key missing")
        if not equal(dap_signature(key.key_type, key.value, lfdb_hash), signature):
            raise ApduError(SW.SECURITY_STATUS, "DAP verification failed")
