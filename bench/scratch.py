"""A scratch key service for the benchmarks: test token and SQLite database in a temporary $TSM_HOME.

Never touches var/. Call before anything loads the PKCS#11 library in the process (SoftHSM2 reads its
configuration once).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from keyservice.hsm import Hsm
from keyservice.runtime import open_service
from keyservice.service import KeyService
from storage.config import load_settings, with_overrides
from tsm.embedded import initialise


def scratch_service(label: str = "bench") -> KeyService:
    """`tsm init --test-token` in a temporary home, then the opened service."""
    home = Path(tempfile.mkdtemp(prefix="tsm-bench-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    settings = with_overrides(load_settings({"TSM_HOME": str(home)}), token_label=label)
    initialise(settings, test_token=True)
    return open_service(settings)


def hsm_of(service: KeyService) -> Hsm:
    """The open HSM session behind the facade: the benchmarks measure the layers under it (declared in
    tests/test_boundaries.py)."""
    return service._open_core().hsm
