"""Start-up self-test (FIPS 140-3 style): published known answers through the production code path.

Each shipped vector's key is created as a *session* object on the production token (gone when the session
closes, never a token object), run through the same function production uses, and destroyed. The service
refuses to start when any answer differs (`tsm serve`, `/health`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pkcs11.constants import Attribute, ObjectClass

from keyservice import kcv as kcv_mod
from keyservice.errors import SelfTestFailed
from keyservice.hsm import Hsm
from keyservice.inventory import PKCS11_TYPE, Algorithm, KcvMethod
from keyservice.templates import ALL_CAPABILITIES, session_key

SELFTEST_FILES = ("kcv.json",)


@dataclass(frozen=True)
class SelfTestResult:
    """How many shipped vectors ran, and which failed."""

    passed: int
    failed: list[str]

    @property
    def ok(self) -> bool:
        return not self.failed


def _vectors() -> list[dict[str, Any]]:
    folder = resources.files("keyservice").joinpath("vectors")
    out: list[dict[str, Any]] = []
    for name in SELFTEST_FILES:
        out.extend(json.loads(folder.joinpath(name).read_text())["vectors"])
    return out


def _session_key(hsm: Hsm, algorithm: Algorithm, value: bytes) -> int:
    template = dict(session_key(PKCS11_TYPE[algorithm], caps=ALL_CAPABILITIES))
    template.update({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.VALUE: value})
    with hsm.lock:
        return hsm.raw.create(template)


def run(hsm: Hsm) -> SelfTestResult:
    """Run every shipped vector; never leaves an object behind."""
    passed, failed = 0, []
    for vec in _vectors():
        algorithm = Algorithm(vec["algorithm"])
        handle = _session_key(hsm, algorithm, bytes.fromhex(vec["key"]))
        try:
            got = kcv_mod.compute(hsm, handle, algorithm, KcvMethod(vec["method"]), int(vec["length"]))
        finally:
            with hsm.lock:
                hsm.raw.destroy(handle)
        if got == vec["expect"].upper():
            passed += 1
        else:
            failed.append(vec["id"])
    return SelfTestResult(passed, failed)


def require(hsm: Hsm) -> SelfTestResult:
    """Run the self-test and raise SelfTestFailed naming the failing vectors."""
    result = run(hsm)
    if not result.ok:
        raise SelfTestFailed(f"self-test failed: {', '.join(result.failed)}")
    return result
