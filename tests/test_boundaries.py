"""Layering (ARCHITECTURE.md): arrows point down, keyservice is the crypto boundary, cardsim stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
KEYSERVICE_FACADE = {"keyservice.service", "keyservice.scoped", "keyservice.vendor", "keyservice.runtime",
                     "keyservice.errors", "keyservice.policy", "keyservice.inventory", "keyservice.cli"}
# package -> packages it may never import
FORBIDDEN = {
    "storage": {"keyservice", "hsm_profiles", "softhsm", "ceremonies", "tsm_core", "cardsim", "web", "tsm"},
    "hsm_profiles": {"keyservice", "ceremonies", "tsm_core", "cardsim", "web", "tsm"},
    "softhsm": {"keyservice", "ceremonies", "tsm_core", "cardsim", "web", "tsm"},
    "keyservice": {"ceremonies", "tsm_core", "cardsim", "web", "tsm"},
    "cardsim": {"keyservice", "hsm_profiles", "softhsm", "ceremonies", "tsm_core", "web", "tsm", "storage"},
    "tsm_core": {"web", "tsm", "ceremonies"},
}


def _imports(package: str) -> list[tuple[Path, str]]:
    found = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((path, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_arrows_point_down(package):
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p, m in _imports(package)
           if m.split(".")[0] in FORBIDDEN[package]]
    assert not bad


@pytest.mark.parametrize("package", ["tsm_core", "web", "ceremonies", "tsm", "cardsim"])
def test_only_the_keyservice_facade_and_no_pkcs11_above_it(package):
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p, m in _imports(package)
           if m.split(".")[0] == "pkcs11"
           or (m.startswith("keyservice.") and not any(m == f or m.startswith(f + ".") for f in KEYSERVICE_FACADE))]
    assert not bad
