"""`tsm readers` and `tsm relay-client`: the PC/SC readers of this machine, and the reference phone-app relay
(docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

import click

from keyservice.errors import InvalidInput
from tsm.output import emit_json, json_option, table
from tsm.params import HttpUrl, Seconds
from tsm_core.transport.pcsc import PcscTransport, list_readers
from tsm_core.transport.relay_client import DEFAULT_POLL_INTERVAL, DEFAULT_RETRY_WINDOW, RelayClient

MAX_INDEX_DIGITS = 4
READER_HELP = "Reader index or name substring (see `tsm readers`)."
reader_option = click.option("--reader", "-r", metavar="READER", required=True, help=READER_HELP)


def reader_choice(value: str) -> str | int:
    """A reader given as an index ("0") or a name substring."""
    return int(value) if value.isascii() and value.isdecimal() and len(value) <= MAX_INDEX_DIGITS else value


def _first_line(path: Path) -> str:
    """The first line of a secret's file (never taken from the command line, where `ps` would show it)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path.name} ({type(exc).__name__})") from None
    if not lines or not lines[0].strip():
        raise InvalidInput(f"{path.name} is empty: its first line must be the API key")
    return lines[0].strip()


@click.command("readers")
@json_option
def readers_command(as_json: bool) -> None:
    """List the PC/SC readers with their index."""
    readers = list_readers()
    if as_json:
        emit_json([{"index": index, "name": name} for index, name in enumerate(readers)])
    else:
        table(("INDEX", "NAME"), list(enumerate(readers)))


@click.command("relay-client")
@click.option("--url", type=HttpUrl(), required=True, help="Base URL of the TSM relay endpoint.")
@click.option("--session", "session_id", metavar="ID", required=True, help="Relay session id given by the TSM.")
@reader_option
@click.option("--poll-interval", type=Seconds(60), default=DEFAULT_POLL_INTERVAL, show_default=True,
              help="Seconds before the next request after the TSM answered WAIT.")
@click.option("--retry-window", type=Seconds(3600), default=DEFAULT_RETRY_WINDOW, show_default=True,
              help="Seconds a request that failed on the network is re-sent (same sequence number) before giving up.")
@click.option("--api-key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File whose first line is the device's API key (a session the phone opened over the API).")
def relay_client_command(url: str, session_id: str, reader: str, poll_interval: float, retry_window: float,
                         api_key_file: Path | None) -> None:
    """Act as the phone app: run the TSM's APDU batches on the card in the reader, one APDU at a time, until the
    session closes (docs/relay.md)."""
    api_key = None if api_key_file is None else _first_line(api_key_file)
    client = RelayClient(url, session_id, PcscTransport(reader_choice(reader)), poll_interval=poll_interval,
                         retry_window=retry_window, api_key=api_key)
    executed = client.run()
    click.echo(f"session closed after {executed} batches")
