"""Inputs that once ended in a Python traceback (issue 8): each is one `error[code]` line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from globalplatform import tlv
from tsm.cli import main


def _one_line(args: list[str], code: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error[{code}]"), result.output
    assert "Traceback" not in result.output


def test_deeply_nested_tlv():
    data = b""
    for _ in range(3000):
        data = tlv.encode(0xE1, data)
    _one_line(["gp", "tlv", data.hex()], "gp_tlv_format")


def test_a_tlv_tree_within_the_depth_limit_prints(tmp_path: Path):
    data = b"\x80\x01\x01"
    for _ in range(tlv.MAX_DEPTH):
        data = tlv.encode(0xE1, data)
    result = CliRunner().invoke(main, ["gp", "tlv", data.hex()])
    assert result.exit_code == 0 and result.output.splitlines()[-1].strip() == "80 01"


@pytest.fixture
def card(tmp_path: Path) -> Path:
    path = tmp_path / "card.json"
    assert CliRunner().invoke(main, ["cardsim", "new", "--out", str(path)]).exit_code == 0
    return path


def test_card_state_nested_too_deeply(card: Path):
    card.write_text("[" * 100_000 + "]" * 100_000)
    _one_line(["cardsim", "show", "--card", str(card)], "cardsim_state_file")


def test_card_state_with_a_key_of_the_wrong_length(card: Path):
    state = json.loads(card.read_text())
    state["registry"]["apps"][0]["sd"]["keysets"][0]["keys"][0]["value"] = "4041"
    card.write_text(json.dumps(state))
    _one_line(["cardsim", "show", "--card", str(card)], "cardsim_state_file")
