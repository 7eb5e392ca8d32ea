"""Identity at the edge (issue 8): the console officer's name cannot forge audit lines or overflow records."""

from __future__ import annotations

import pytest

from keyservice.errors import InvalidInput
from keyservice.identity import NAME_MAX, Caller, CallerKind
from keyservice.policy import Purpose, Request


@pytest.mark.parametrize("name", ["alice\nseq 99 forged line", "a\rb", "tab\there", "x" * 5000, "", " alice",
                                  "nul\x00", "esc\x1b[31m"])
def test_names_that_would_forge_or_overflow_are_refused(name):
    with pytest.raises(InvalidInput):
        Caller(name, CallerKind.OFFICER)


def test_a_plain_name_of_the_maximum_length_is_accepted():
    assert str(Caller("a" * NAME_MAX, CallerKind.OFFICER)) == "officer:" + "a" * NAME_MAX


@pytest.mark.parametrize("target", ["", "x" * 257, "se\n1"])
def test_targets_are_printable_and_bounded(target):
    with pytest.raises(InvalidInput):
        Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, target)


def test_the_console_officer_comes_from_the_environment_and_is_checked(monkeypatch):
    from tsm.identity import console_officer

    monkeypatch.setenv("TSM_OPERATOR", "alice")
    assert str(console_officer()) == "officer:alice"
    monkeypatch.setenv("TSM_OPERATOR", "alice\n  42 forged")
    with pytest.raises(InvalidInput):
        console_officer()
