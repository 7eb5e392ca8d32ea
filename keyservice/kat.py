"""Known-answer test runner (docs/kat-format.md): published vectors through the production code paths.

Each vector's keys are created from their clear values as non-extractable session objects (keys a vector
*wraps* as wrappable ones), destroyed after the vector; then the same functions production uses compute the
results. `tsm kat` runs on a scratch token; the start-up self-test runs the shipped vectors on the
production token, where session objects leave nothing behind. Output: `PASS file:id`,
`FAIL file:id: what`, `ERROR file:id: error`, and `N passed, M failed` (errors count as failed).

    python -m keyservice.kat FILE_OR_DIR [...]      # a scratch SoftHSM2 token is created for the run
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from keyservice.errors import KeyServiceError
from keyservice.hsm import Hsm
from keyservice.kat_types import HANDLERS, Context, Mismatch, VectorError
from softhsm.bootstrap import BootstrapError, generate_pins, init_token, write_conf

SOFTHSM_MODULE: Final = "/usr/lib/softhsm/libsofthsm2.so"
SHIPPED_PACKAGE: Final = "keyservice.vectors"


@dataclass(frozen=True)
class Outcome:
    """One result line."""

    status: str
    name: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.status} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class KatReport:
    """All outcomes of a run."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(o.status == "PASS" for o in self.outcomes)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0

    def lines(self) -> list[str]:
        """The output lines, the summary last."""
        return [o.line() for o in self.outcomes] + [f"{self.passed} passed, {self.failed} failed"]


def _files(paths: Iterable[Path | Traversable]) -> Iterator[Path | Traversable]:
    for path in paths:
        if path.is_dir():
            yield from sorted((p for p in path.iterdir() if p.name.endswith(".json")), key=lambda p: p.name)
        else:
            yield path


def _load(path: Path | Traversable) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise VectorError(f"cannot read file: {exc.__class__.__name__}") from None
    except json.JSONDecodeError as exc:
        raise VectorError(f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("vectors"), list):
        raise VectorError("not a vector file: no 'vectors' list")
    if not isinstance(doc.get("source"), str) or not doc["source"].strip():
        raise VectorError("the file does not name its 'source'")
    return [v if isinstance(v, dict) else {"id": "?", "type": "?"} for v in doc["vectors"]]


def run_vector(hsm: Hsm, vector: dict[str, Any]) -> tuple[str, str]:
    """(status, detail) for one vector."""
    vtype = vector.get("type")
    handler = HANDLERS.get(vtype) if isinstance(vtype, str) else None
    if handler is None:
        return "FAIL", f"unsupported type {vtype!r}"
    ctx = Context(hsm)
    try:
        handler(ctx, vector)
    except Mismatch as exc:
        return "FAIL", str(exc)
    except VectorError as exc:
        return "ERROR", f"invalid vector: {exc}"
    except KeyServiceError as exc:
        return "ERROR", f"{exc.__class__.__name__}: {exc}"
    finally:
        ctx.cleanup()
    return "PASS", ""


def run_kat(paths: Sequence[Path | Traversable], hsm: Hsm) -> KatReport:
    """Run every vector of the given files/directories; never raises for bad vectors."""
    report = KatReport()
    seen: set[str] = set()
    for path in _files(paths):
        try:
            vectors = _load(path)
        except VectorError as exc:
            report.outcomes.append(Outcome("ERROR", path.name, str(exc)))
            continue
        for index, vector in enumerate(vectors):
            vid = vector.get("id")
            name = f"{path.name}:{vid if isinstance(vid, str) and vid else f'#{index}'}"
            if not isinstance(vid, str) or not vid:
                report.outcomes.append(Outcome("ERROR", name, "invalid vector: no 'id'"))
                continue
            if vid in seen:
                report.outcomes.append(Outcome("ERROR", name, "invalid vector: duplicate id"))
                continue
            seen.add(vid)
            status, detail = run_vector(hsm, vector)
            report.outcomes.append(Outcome(status, name, detail))
    return report


def shipped_vectors() -> Traversable:
    """The vectors packaged with the key service (`tsm selftest`)."""
    return resources.files(SHIPPED_PACKAGE)


@contextmanager
def scratch_hsm(label: str = "kat-scratch") -> Iterator[Hsm]:
    """A fresh SoftHSM2 token in a temporary directory (sets SOFTHSM2_CONF for this process)."""
    with tempfile.TemporaryDirectory(prefix="tsm-kat-") as tmp:
        conf = Path(tmp) / "softhsm2.conf"
        write_conf(conf, Path(tmp) / "tokens")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        pins = generate_pins()
        init_token(os.environ.get("TSM_PKCS11_MODULE", SOFTHSM_MODULE), label, pins)
        hsm = Hsm(os.environ.get("TSM_PKCS11_MODULE", SOFTHSM_MODULE), label, pins.user_pin)
        try:
            yield hsm
        finally:
            hsm.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m keyservice.kat FILE_OR_DIR [...]`; exit status 0 iff nothing failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m keyservice.kat FILE_OR_DIR [...]   (no argument: --selftest runs shipped vectors)")
        return 0 if args else 2
    paths: list[Path | Traversable] = [shipped_vectors()] if args == ["--selftest"] else []
    for arg in args if not paths else []:
        p = Path(arg)
        if not p.exists():
            print(f"error: {arg}: no such file or directory", file=sys.stderr)
            return 2
        paths.append(p)
    try:
        with scratch_hsm() as hsm:
            report = run_kat(paths, hsm)
    except (KeyServiceError, BootstrapError, OSError) as exc:
        print(f"error: cannot open a scratch token: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
