"""Session-scoped scratch SoftHSM2 token for the GP / key-exchange tests.

The PKCS#11 library reads SOFTHSM2_CONF once per process: if another conftest already set it, the token
is created in that configuration (tokens are told apart by label); otherwise a temporary one is written.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from globalplatform.keys import KeyAlgorithm
from keyservice import templates
from keyservice.hsm import Hsm
from softhsm import bootstrap

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture(scope="session")
def gp_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    conf_env = os.environ.get("SOFTHSM2_CONF")
    if conf_env and Path(conf_env).exists():
        conf = Path(conf_env)
    else:
        base = tmp_path_factory.mktemp("softhsm")
        conf = base / "softhsm2.conf"
        bootstrap.write_conf(conf, base / "tokens")
        os.environ["SOFTHSM2_CONF"] = str(conf)
    label = f"ks-gp-{uuid.uuid4().hex[:8]}"
    pins = bootstrap.generate_pins()
    bootstrap.init_token(MODULE, label, pins)
    token = Hsm(MODULE, label, pins.user_pin)
    yield token
    token.close()


class KeyFactory:
    """Imports test keys (clear values from published vectors) and destroys them afterwards."""

    def __init__(self, hsm: Hsm) -> None:
        self.hsm = hsm
        self.labels: list[str] = []

    def token(self, algorithm: KeyAlgorithm, value: bytes) -> int:
        label = f"t-{uuid.uuid4().hex}"
        self.labels.append(label)
        return self.hsm.create(label, b"t", templates.key_type(algorithm, len(value)), value,
                               templates.ALL_CAPABILITIES)

    def cleanup(self) -> None:
        for label in self.labels:
            self.hsm.destroy(label)


@pytest.fixture
def keys(gp_hsm: Hsm) -> Iterator[KeyFactory]:
    factory = KeyFactory(gp_hsm)
    yield factory
    factory.cleanup()


def count_objects(hsm: Hsm) -> int:
    """Every object visible in the session (token and session objects)."""
    with hsm.lock:
        return len(list(hsm._session.get_objects()))
