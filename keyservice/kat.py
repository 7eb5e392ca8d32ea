"""Known-answer test runner (docs/kat-format.md): published vectors through the production code paths.

Each vector's keys are created from their clear values as non-extractable session objects (keys a vector
*wraps* as wrappable ones), destroyed after the vector; then the same functions production uses compute the
results. `tsm kat` runs on a scratch token; the start-up self-test runs the shipped vectors on the
production token, where session objects leave nothing behind. Output: `PASS file:id`,
`FAIL file:id: what`, `ERROR file:id: error`, and `N passed, M failed` (errors count as failed).

    python -m keyservice.kat FILE_OR_DIR [...]      # a scratch SoftHSM2 token is created for the run
"""

from __future__ import annotations

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

from keyservice.errors import InvalidInput, KeyServiceError
from keyservice.hsm import Hsm
from keyservice.kat_fields import Fields, VectorError, json_type, load_json, shown
from keyservice.kat_types import HANDLERS, Context, Mismatch, VectorType
from softhsm.bootstrap import BootstrapError, generate_pins, init_token, write_conf

SOFTHSM_MODULE: Final = "/usr/lib/softhsm/libsofthsm2.so"
SHIPPED_PACKAGE: Final = "keyservice.vectors"
MAX_ID_LENGTH: Final = 100


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


def _load(path: Path | Traversable) -> list[object]:
    """The `vectors` of a file whose top level is exactly {"source", "vectors"}."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VectorError(f"cannot read file: {exc.__class__.__name__}") from None
    doc = load_json(text)
    if not isinstance(doc, dict):
        raise VectorError(f"not a vector file: the top level is {json_type(doc)}, not an object")
    top = Fields(doc, "", "a vector file")
    if not top.text("source").strip():
        raise VectorError("is empty: the file must name its source", "source")
    vectors = top.array("vectors")
    top.close()
    return vectors


def _vector_id(fields: Fields) -> str:
    vid = fields.text("id")
    if not 0 < len(vid) <= MAX_ID_LENGTH or not vid.isprintable() or any(c.isspace() for c in vid):
        raise VectorError(f"must be 1 to {MAX_ID_LENGTH} printable characters without spaces", "id")
    return vid


def run_check(hsm: Hsm, handler: VectorType[Any], vector: object) -> tuple[str, str]:
    """(status, detail) of one parsed vector; its keys are destroyed afterwards."""
    ctx = Context(hsm)
    try:
        try:
            handler.check(ctx, vector)
        finally:
            ctx.cleanup()
    except Mismatch as exc:
        return "FAIL", str(exc)
    except KeyServiceError as exc:
        return "ERROR", f"{exc.__class__.__name__}: {exc}"
    return "PASS", ""


def run_vector(hsm: Hsm, file: str, index: int, raw: object, seen: set[str]) -> Outcome:
    """Parse one vector strictly (ids in `seen` are taken), then check it."""
    name = f"{file}:#{index}"
    try:
        fields = Fields(raw, "", "a vector")
        vid = _vector_id(fields)
        name = f"{file}:{vid}"
        if vid in seen:
            raise VectorError("is a duplicate (ids are unique across all files)", "id")
        seen.add(vid)
        vtype = fields.text("type")
        handler = HANDLERS.get(vtype)
        if handler is None:
            return Outcome("FAIL", name, f"unsupported type {shown(vtype)}")
        fields.what = f"type {vtype}"
        vector = handler.parse(fields)
        fields.close()
    except VectorError as exc:
        return Outcome("ERROR", name, f"invalid vector: {exc}")
    status, detail = run_check(hsm, handler, vector)
    return Outcome(status, name, detail)


def run_kat(paths: Sequence[Path | Traversable], hsm: Hsm) -> KatReport:
    """Run every vector of the given files/directories; never raises for bad files or vectors."""
    report = KatReport()
    seen: set[str] = set()
    for path in _files(paths):
        try:
            vectors = _load(path)
        except VectorError as exc:
            report.outcomes.append(Outcome("ERROR", path.name, str(exc)))
            continue
        report.outcomes.extend(run_vector(hsm, path.name, n, raw, seen) for n, raw in enumerate(vectors))
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


def _existing(arg: str) -> Path:
    path = Path(arg)
    if not path.exists():
        raise InvalidInput(f"{arg}: no such file or directory")
    return path


def _error(code: str, message: str) -> int:
    """The one-line error of every `tsm` command (tsm/cli.py), exit status 2."""
    print(f"error[{code}]: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m keyservice.kat FILE_OR_DIR [...]`; exit status 0 iff nothing failed, 2 on a usage error."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m keyservice.kat FILE_OR_DIR [...]   (or --selftest: the shipped vectors)")
        return 0 if args else 2
    try:
        paths = [shipped_vectors()] if args == ["--selftest"] else [_existing(arg) for arg in args]
        with scratch_hsm() as hsm:
            report = run_kat(paths, hsm)
    except (KeyServiceError, BootstrapError) as exc:
        return _error(exc.code, str(exc))
    except OSError as exc:
        return _error("scratch_token_unavailable", f"cannot create a scratch token: {exc.strerror or exc}")
    for line in report.lines():
        print(line)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
