"""Fixtures for the card simulator's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardsim.state import new_card
from tests.cardsim.host import Host

TEST_KEY = bytes(range(0x40, 0x50))
_REPO = Path(__file__).resolve().parents[2]


def vector_file(name: str) -> dict:
    """A published vector file: tests/vectors/ if present, else ../shared/vectors/."""
    for folder in (_REPO / "tests" / "vectors", _REPO.parent / "shared" / "vectors"):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text("utf-8"))
    pytest.fail(f"vector file {name} not found")


@pytest.fixture
def card():
    """A default-profile card (SCP03 i=70, SECURED), powered on."""
    c = new_card(None)
    c.power_on()
    return c


@pytest.fixture
def scp02_card():
    """An SCP02 i=55 card, powered on."""
    c = new_card("scp02-i55")
    c.power_on()
    return c


@pytest.fixture
def host(card):
    """A C-MAC secure channel to the default card's ISD."""
    return Host(card, TEST_KEY).open()
