"""The card a command talks to: a PC/SC reader (`--reader`) or a simulated card's state file (`--card`), the
simulator driven in this process and its state saved back when the command ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from tsm.commands.pcsc import READER_HELP, reader_choice
from tsm_core.transport.base import Transport
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport

CARD_HELP = "A simulated card's state file (`tsm cardsim new`), driven in this process instead of a reader."


def card_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--reader NAME` and `--card FILE` (exactly one is given; `require_card` checks)."""
    command = click.option("--card", "card_path", metavar="FILE", help=CARD_HELP,
                           type=click.Path(dir_okay=False, path_type=Path))(command)
    return click.option("--reader", "-r", metavar="READER", help=READER_HELP)(command)


def require_card(reader: str | None, card_path: Path | None) -> None:
    """Exactly one of --reader and --card, or a usage error."""
    if (reader is None) == (card_path is None):
        raise click.UsageError("give exactly one of --reader and --card")


def target_of(reader: str | None, card_path: Path | None) -> str:
    """How the audit trail names the card's path."""
    return f"reader:{reader}" if card_path is None else f"card-file:{card_path.name}"


@contextmanager
def card_transport(reader: str | None, card_path: Path | None) -> Iterator[Transport]:
    """The card in a PC/SC reader, or a simulated card from a state file (saved back afterwards)."""
    if card_path is None:
        with PcscTransport(reader_choice(reader or "")) as transport:
            yield transport
        return
    from cardsim.state import load_card, save_card  # the simulator only when asked for

    card = load_card(card_path)
    try:
        with LocalTransport(card) as local:
            yield local
    finally:
        save_card(card, card_path)
