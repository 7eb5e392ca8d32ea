"""The card a command talks to: a PC/SC reader (`--reader`), a simulated card's state file (`--card`, the
simulator driven in this process and its state saved back when the command ends), or a phone relay session
(`--relay`, a session in the database whose endpoint this process serves while the command runs; docs/relay.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import click

from storage.config import load_settings
from tsm.commands.pcsc import READER_HELP, reader_choice
from tsm.params import HostPort, RelaySessionId
from tsm_core.transport.base import Transport
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport
from tsm_core.transport.relay import RelayTransport
from tsm_core.transport.relay_store import RelayStore

CARD_HELP = "A simulated card's state file (`tsm cardsim new`), driven in this process instead of a reader."
RELAY_HELP = ("The phone relay session the phone's relay client serves (docs/relay.md): 16 to 64 characters "
              "A-Z a-z 0-9 _ -, a secret shared with the phone; this command serves the endpoint while it runs.")
LISTEN_HELP = "Where --relay serves its endpoint (default: the relay_listen setting, TSM_RELAY_LISTEN, 127.0.0.1:8780)."
HANG_UP_WAIT: Final = 5.0
"""Seconds the endpoint stays up after the session closed, for the phone to learn it and stop cleanly."""


def card_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--reader READER`, `--card FILE`, `--relay SESSION` (exactly one is given; `require_card` checks) and
    `--relay-listen HOST:PORT`; the command receives `reader`, `card_path`, `relay`, `relay_listen`."""
    command = click.option("--relay-listen", "relay_listen", type=HostPort(), default=None, help=LISTEN_HELP)(command)
    command = click.option("--relay", "relay", type=RelaySessionId(), default=None, help=RELAY_HELP)(command)
    command = click.option("--card", "card_path", metavar="FILE", help=CARD_HELP,
                           type=click.Path(dir_okay=False, path_type=Path))(command)
    return click.option("--reader", "-r", metavar="READER", help=READER_HELP)(command)


def _count(reader: str | None, card_path: Path | None, relay: str | None) -> int:
    return sum(value is not None for value in (reader, card_path, relay))


def card_given(reader: str | None, card_path: Path | None, relay: str | None = None) -> bool:
    """Whether a card was given (where one is optional); more than one of --reader, --card and --relay is a
    usage error."""
    given = _count(reader, card_path, relay)
    if given > 1:
        raise click.UsageError("give at most one of --reader, --card and --relay")
    return given == 1


def require_card(reader: str | None, card_path: Path | None, relay: str | None = None, *,
                 se_known: bool = True) -> None:
    """Exactly one of --reader, --card and --relay, or a usage error. A command that reads a card before it
    knows which SE it is (`se_known=False`) refuses --relay: a relay session is bound to a registered SE."""
    if _count(reader, card_path, relay) != 1:
        raise click.UsageError("give exactly one of --reader, --card and --relay")
    if relay is not None and not se_known:
        raise click.UsageError("--relay needs a registered SE (the relay session is bound to it) and this command "
                               "reads a card before it knows which SE it is: use --reader or --card")


def target_of(reader: str | None, card_path: Path | None) -> str:
    """How the audit trail names the card's path."""
    return f"reader:{reader}" if card_path is None else f"card-file:{card_path.name}"


@contextmanager
def card_transport(reader: str | None, card_path: Path | None, relay: str | None = None, *,
                   se_id: str | None = None, listen: tuple[str, int] | None = None,
                   job_id: str | None = None) -> Iterator[Transport]:
    """The card in a PC/SC reader, a simulated card from a state file (saved back afterwards), or the SE `se_id`
    behind the phone relay session `relay` (for job `job_id`), served on `listen` (default: the relay_listen
    setting)."""
    if relay is not None:
        if se_id is None:
            raise click.UsageError("--relay needs the SE the relay session is bound to")
        with _relay_transport(relay, se_id, listen, job_id) as transport:
            yield transport
        return
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


@contextmanager
def _relay_transport(session_id: str, se_id: str, listen: tuple[str, int] | None,
                     job_id: str | None) -> Iterator[Transport]:
    """A relay session `session_id` bound to `se_id` (and `job_id`) in this home's database, its endpoint served
    on `listen` until the block ends (the web service, `tsm serve`, answers the phone as well); then the
    session is closed and the endpoint stops once the phone learnt it."""
    from tsm.service import sessions
    from web.relay_server import serve_relay  # Flask and werkzeug only when asked for

    settings = load_settings()
    store = RelayStore(sessions())
    with serve_relay(store, *(listen or settings.relay_listen)) as url:
        store.open_session(se_id, session_id=session_id, job_id=job_id)
        click.echo(f"relay session {session_id} waiting at {url} (tsm relay-client --url {url} --session "
                   f"{session_id} --reader R)", err=True)
        try:
            with RelayTransport(store, session_id, se_id, answer_timeout=settings.relay_timeout) as transport:
                yield transport
        finally:
            store.close_session(session_id)  # also when the transport did not connect
            store.wait_told_closed(session_id, HANG_UP_WAIT)
