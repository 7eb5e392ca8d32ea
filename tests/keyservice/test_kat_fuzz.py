"""Fuzzing the KAT runner with mutated published vector files (hypothesis, issue 7).

Whatever the file holds, `run_kat` returns a report (PASS/FAIL/ERROR lines and the summary) and never raises;
a vector whose expected value was changed never passes.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyservice.hsm import Hsm
from keyservice.kat import run_kat

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = [(p.name, v) for d in (ROOT / "tests" / "vectors", ROOT / "keyservice" / "vectors")
             for p in sorted(d.glob("*.json")) for v in json.loads(p.read_text())["vectors"]]
EXPECTED = frozenset({"expect", "expect_kcv", "expect_key", "wrapped", "external_authenticate", "response_plain"})
HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
LINE = re.compile(r"(PASS|FAIL|ERROR) [^\n\r]+")
SUMMARY = re.compile(r"(\d+) passed, (\d+) failed")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Twice:
    """A key the mutated JSON text gives a second time."""

    name: str


@dataclass(frozen=True)
class Raw:
    """JSON text emitted as is (deep nesting)."""

    text: str


def dumps(node: Any) -> str:
    """JSON text of a tree that may hold `Twice` keys and `Raw` values."""
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, dict):
        return "{" + ", ".join(f"{json.dumps(k.name if isinstance(k, Twice) else k)}: {dumps(v)}"
                               for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(dumps(v) for v in node) + "]"
    return json.dumps(node)


def paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every place below the root that holds a value."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out = []
    for key, value in items:
        out.append((*prefix, key))
        out.extend(paths(value, (*prefix, key)))
    return out


def parent_of(root: Any, path: Path_) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)


def flip_high_nibble(text: str, byte: int) -> str:
    """Change one byte's high nibble: never only a DES parity bit, never only the case of a digit."""
    pos = 2 * (byte % (len(text) // 2))
    return text[:pos] + format(int(text[pos], 16) ^ 0x8, "X") + text[pos + 1:]


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, bool]:
    """(file text, whether an expected value was changed)."""
    name, original = draw(st.sampled_from(PUBLISHED))
    vector = copy.deepcopy(original)
    kind = draw(st.sampled_from(["drop", "twice", "rename", "retype", "nest", "truncate_hex", "resize_hex", "add",
                                 "expected", "random_file", "cut_file"]))
    if kind == "random_file":
        return json.dumps(draw(json_values)), False
    text_of = lambda v: dumps({"source": f"mutated {name}", "vectors": [v]})  # noqa: E731
    if kind == "cut_file":
        text = text_of(vector)
        return text[:draw(st.integers(0, len(text) - 1))], False
    if kind == "add":
        vector[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in vector))] = draw(json_values)
        return text_of(vector), False
    places = paths(vector)
    if kind in ("truncate_hex", "resize_hex", "expected"):
        places = [p for p in places if isinstance(parent_of(vector, p)[p[-1]], str)
                  and HEX.fullmatch(parent_of(vector, p)[p[-1]])
                  and (kind != "expected" or EXPECTED.intersection(map(str, p)))]
        if not places:
            return text_of(vector), False
    path = draw(st.sampled_from(places))
    parent, key = parent_of(vector, path), path[-1]
    if kind == "drop":
        del parent[key]
    elif kind == "twice" and isinstance(parent, dict):
        parent[Twice(str(key))] = draw(st.sampled_from([parent[key], None, "00", 1]))
    elif kind == "rename" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=10))] = parent.pop(key)
    elif kind == "retype":
        parent[key] = draw(json_values)
    elif kind == "nest":
        depth = draw(st.integers(1, 3000))
        parent[key] = Raw("[" * depth + dumps(parent[key]) + "]" * depth)
    elif kind == "truncate_hex":
        parent[key] = parent[key][:-draw(st.integers(1, 2))]
    elif kind == "resize_hex":
        parent[key] = draw(st.binary(max_size=300)).hex()
    elif kind == "expected":
        parent[key] = flip_high_nibble(parent[key], draw(st.integers(0, 1000)))
        return text_of(vector), True
    return text_of(vector), False


@pytest.fixture(scope="module")
def scratch_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kat-fuzz") / "mutated.json"


@settings(max_examples=150, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated_files())
def test_mutated_files_always_give_a_report(gp_hsm: Hsm, scratch_file: Path, case: tuple[str, bool]) -> None:
    text, expected_changed = case
    scratch_file.write_text(text, encoding="utf-8")
    lines = run_kat([scratch_file], gp_hsm).lines()
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary is not None, lines
    assert all(LINE.fullmatch(line) for line in lines[:-1]), lines
    passed = sum(line.startswith("PASS ") for line in lines[:-1])
    assert (int(summary[1]), int(summary[2])) == (passed, len(lines) - 1 - passed)
    if expected_changed:
        assert passed == 0, lines
