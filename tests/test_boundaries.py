"""Layering (docs/architecture.md): the declared import list holds for every import of the product.

The allowed imports, the key service's public modules and the benchmarks' declared reach are read from
docs/architecture.md itself, so the document, keyservice/service.py's docstring and this test cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "architecture.md"
PRODUCT = ("globalplatform", "storage", "hsm_profiles", "softhsm", "cardsim", "keyservice", "ceremonies",
           "tsm_core", "web", "tsm")
WATCHED = {*PRODUCT, "pkcs11"}
CALLER_EDGES = ("tsm", "web")


def _block(name: str) -> str:
    match = re.search(rf"<!-- {name} -->(.*?)<!-- /{name} -->", DOC.read_text(), re.S)
    assert match, f"docs/architecture.md lacks the <!-- {name} --> block"
    return match.group(1)


def _table(name: str) -> dict[str, set[str]]:
    rows = [line.strip().strip("|").split("|") for line in _block(name).splitlines() if line.startswith("| ")]
    return {cells[0].strip(): {part.strip() for part in cells[1].split(",") if "nothing" not in part}
            for cells in rows if cells[0].strip() not in ("package", "benchmark")}


@cache
def allowed() -> dict[str, set[str]]:
    return _table("imports")


@cache
def public_modules() -> set[str]:
    return set(re.findall(r"`(keyservice\.\w+)`", _block("keyservice-public")))


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, with `from X import Y` resolved to X.Y where Y is a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            base = ROOT.joinpath(*node.module.split("."))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if (base / f"{alias.name}.py").exists() or (base / alias.name).is_dir()]
    return found


def _violations(path: Path, package: str, reach: set[str]) -> list[str]:
    bad = []
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top not in WATCHED or top == package:
            continue
        if top == "keyservice":
            entry = ".".join(module.split(".")[:2])
            if "keyservice (public modules)" in reach and (module == "keyservice" or entry in public_modules()):
                continue
            if "keyservice" in reach or entry in reach:
                continue
        elif top in reach or module in reach:
            continue
        bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", PRODUCT)
def test_each_package_imports_only_what_the_architecture_declares(package):
    reach = allowed()[package]
    bad = [v for path in sorted((ROOT / package).rglob("*.py")) for v in _violations(path, package, reach)]
    assert not bad


def test_benchmarks_reach_only_declared_internals():
    declared = _table("bench-internals")
    bad = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        reach = {"globalplatform", "storage", "keyservice (public modules)", "tsm_core", "cardsim", "tsm",
                 *declared.get(f"bench/{path.name}", set())}
        bad += _violations(path, "bench", reach)
    assert not bad


def test_the_facade_docstring_names_the_declared_public_modules():
    import keyservice.service

    paragraph = (keyservice.service.__doc__ or "").split("Public modules")[1].split("\n\n")[0]
    named = {f"keyservice.{m}" for m in re.findall(r"`(\w+)`", paragraph)}
    assert named == public_modules()


def test_public_modules_exist():
    for module in public_modules():
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module


@pytest.mark.parametrize("package", [p for p in PRODUCT if p not in CALLER_EDGES])
def test_callers_are_created_only_at_the_edges(package):
    """Below tsm/ and web/ nobody builds a Caller: identities come from an authenticated edge."""
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if package == "keyservice" and path.name == "identity.py":
            continue  # the class itself
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Caller":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad


def test_no_public_name_of_the_key_service_reaches_pkcs11_or_the_audit_log():
    """The facade's public attributes are sub-facades and methods; none is a handle, session or the audit log."""
    from keyservice.service import KeyService

    public = {name for name in vars(KeyService) if not name.startswith("_")}
    assert not public & {"hsm", "core", "sessions", "create_key", "refuse", "authorise", "raw", "lock"}
    from keyservice.apps import Apps
    from keyservice.auditing import AuditTrail
    from keyservice.channels import Channels
    from keyservice.keys import Keys
    from keyservice.tokens import Tokens
    from keyservice.vendor import VendorExchange

    for facade in (Keys, Channels, Tokens, Apps, VendorExchange, AuditTrail):
        names = {name for name in vars(facade) if not name.startswith("_")}
        assert not names & {"hsm", "core", "sessions", "audit", "raw"}, facade
