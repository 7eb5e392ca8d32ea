"""`tsm readers` and `tsm relay-client`: the PC/SC readers of this machine, and the reference phone-app relay."""

from __future__ import annotations

import click

from tsm_core.transport.pcsc import PcscTransport, list_readers
from tsm_core.transport.relay_client import RelayClient


def reader_choice(value: str) -> str | int:
    """A reader given as an index ("0") or a name substring."""
    return int(value) if value.isdecimal() else value


@click.command("readers")
def readers_command() -> None:
    """List PC/SC readers with their index."""
    for index, name in enumerate(list_readers()):
        click.echo(f"{index}: {name}")


@click.command("relay-client")
@click.option("--url", required=True, help="Base URL of the TSM relay endpoint.")
@click.option("--session", "session_id", required=True, help="Relay session id given by the TSM.")
@click.option("--reader", "-r", required=True, help="Reader name substring or index (see `tsm readers`).")
@click.option("--poll-interval", type=float, default=0.2, show_default=True, help="Seconds between polls.")
def relay_client_command(url: str, session_id: str, reader: str, poll_interval: float) -> None:
    """Act as the phone app: run the TSM's APDU batches on the card in READER until the session closes."""
    client = RelayClient(url, session_id, PcscTransport(reader_choice(reader)), poll_interval=poll_interval)
    executed = client.run()
    click.echo(f"session closed after {executed} batches")
