"""Bodies of the processes that tests/keyservice/test_hsm_open.py starts (spawned: each loads the PKCS#11 module
itself, like a gunicorn worker). Kept apart from the test module so a child does not import tests.conftest,
which would point SOFTHSM2_CONF at a new, empty token directory.
"""

from __future__ import annotations

import logging
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pkcs11
from pkcs11.mechanisms import KeyType, Mechanism

from keyservice import templates
from keyservice.errors import KeyServiceError
from keyservice.hsm import Hsm


def open_rounds(barrier: Barrier, results: Queue, module: str, label: str, pin: str, rounds: int) -> None:
    """`rounds` times: wait for the other workers, open the token, compute one AES-CMAC, close.

    After each round the module is unloaded from python-pkcs11's per-process cache, so the next round loads
    and initialises it again as a freshly started process does. Puts the list of failures on `results`.
    """
    failures: list[str] = []
    for n in range(rounds):
        barrier.wait()
        try:
            hsm = Hsm(module, label, pin)
            with hsm.lock:
                key = hsm.raw.generate(Mechanism.AES_KEY_GEN, templates.session_key(KeyType.AES, 16))
                if len(hsm.raw.sign(key, Mechanism.AES_CMAC, bytes(16))) != 16:
                    failures.append(f"round {n}: short CMAC")
            hsm.close()
        except KeyServiceError as exc:
            failures.append(f"round {n}: error[{exc.code}]: {exc}")
        pkcs11.unload(module)
    results.put(failures)


class _WriterFinishes(logging.Handler):
    """Puts the token file back when the key service reports (at INFO; each retry is DEBUG) that its retries
    are exhausted."""

    def __init__(self, path: Path, content: bytes) -> None:
        super().__init__(logging.INFO)
        self.path, self.content = path, content

    def emit(self, record: logging.LogRecord) -> None:
        self.path.write_bytes(self.content)


def open_while_written(results: Queue, module: str, label: str, pin: str, token_object: str) -> None:
    """Open the token while its token.object is empty, until every retry has failed: SoftHSM2 then leaves the
    token out of its slot list (NoSuchToken), as it does when it reads the file while another process
    rewrites it (a login, a key generation). Puts (error code, message) on `results`, or ("opened", "").
    """
    path = Path(token_object)
    content = path.read_bytes()
    path.write_bytes(b"")
    logger = logging.getLogger("keyservice.p11open")
    logger.setLevel(logging.INFO)
    logger.addHandler(_WriterFinishes(path, content))
    try:
        Hsm(module, label, pin).close()
        results.put(("opened", ""))
    except KeyServiceError as exc:
        results.put((exc.code, str(exc)))
    finally:
        path.write_bytes(content)
