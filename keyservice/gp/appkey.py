"""Per-SE application keys: a service provider's application master (APP_KEY) never reaches a card; each SE gets
its own key, diversified from the master in the HSM with the SE's KDD.

The per-SE application key is the KDF3 'MAC' key of the application master for the SE's KDD: the GP KDF3
template of `diversify` (GlobalPlatformPro; Amd D §4.1.5, NIST SP 800-108 counter mode with AES-CMAC),
CMAC(master, i ‖ 00 00 00 02 00 ‖ KDD), i = 1 .. length / 16, as long as the master (16 or 32 bytes). It is
derived as a session object by the vector-tested `diversify_key` (tests/vectors/diversify_gpp.json publishes the
'mac' outputs as KCVs) and destroyed after each use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from globalplatform.keys import KeyPurpose
from keyservice.gp import hsmops
from keyservice.gp.diversify import DivMethod, diversify_key
from keyservice.hsm import Hsm

APP_KEY_PURPOSE: Final = KeyPurpose.MAC
"""The KDF3 key identifier k of the per-SE application key (02, 'MAC': the card verifies MACs with it)."""


@contextmanager
def per_se_key(hsm: Hsm, master: int, master_length: int, kdd: bytes, *, wrappable: bool = False) -> Iterator[int]:
    """The SE's application key as a session object (sensitive; `wrappable` only to reach the card in an
    encrypted DGI), destroyed when the block ends. InvalidInput when the KDD is not 10 bytes."""
    key = diversify_key(hsm, master, DivMethod.KDF3, kdd, APP_KEY_PURPOSE, master_length, wrappable=wrappable)
    try:
        yield key
    finally:
        hsmops.destroy(hsm, key)
