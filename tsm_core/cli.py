"""`tsm gp ...`, `tsm readers` and `tsm relay-client`: thin commands over `tsm_core.gp` and the transports.

Typed errors (`TsmCoreError`, each with a `code`) propagate to the root group, which prints one line.
"""

from __future__ import annotations

import click

from tsm_core.gp import registry, sw, tlv
from tsm_core.gp.apdu import SW_LEN
from tsm_core.transport.pcsc import PcscTransport, list_readers
from tsm_core.transport.relay_client import RelayClient

SUBSETS = {
    "isd": registry.StatusSubset.ISD,
    "apps": registry.StatusSubset.APPLICATIONS,
    "files": registry.StatusSubset.LOAD_FILES,
    "modules": registry.StatusSubset.LOAD_FILES_AND_MODULES,
}


class HexBytes(click.ParamType[bytes]):
    """A hex string (spaces and colons allowed) as bytes."""

    name = "hex"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        if isinstance(value, bytes):
            return value
        try:
            return bytes.fromhex(str(value).replace(":", "").replace(" ", ""))
        except ValueError:
            self.fail(f"{value!r} is not hex", param, ctx)


def reader_choice(value: str) -> str | int:
    """A reader given as an index ("0") or a name substring."""
    return int(value) if value.isdecimal() else value


@click.group("gp")
def gp_group() -> None:
    """GlobalPlatform helpers (GPCS 2.3.1): send APDUs, explain status words, decode TLV and GET STATUS."""


@gp_group.command("send")
@click.option("--reader", "-r", required=True, help="Reader name substring or index (see `tsm readers`).")
@click.argument("apdus", nargs=-1, required=True, type=HexBytes())
def send_command(reader: str, apdus: tuple[bytes, ...]) -> None:
    """Send raw C-APDUs to the card in READER, in order, and print each R-APDU."""
    with PcscTransport(reader_choice(reader)) as transport:
        click.echo(f"ATR {transport.atr.hex().upper()}")
        for apdu in apdus:
            response = transport.transmit(apdu)
            status = int.from_bytes(response[-2:], "big")
            click.echo(f">> {apdu.hex().upper()}")
            click.echo(f"<< {response.hex().upper()}  ({sw.lookup(status).meaning})")


@gp_group.command("sw")
@click.argument("status", type=HexBytes())
def sw_command(status: bytes) -> None:
    """Explain a two-byte status word, e.g. 6A88."""
    if len(status) != SW_LEN:
        raise click.BadParameter("a status word is two bytes", param_hint="STATUS")
    info = sw.lookup(int.from_bytes(status, "big"))
    error = info.error.code if info.error else "-"
    click.echo(f"{info.sw:04X}  {info.category.value}  {info.meaning}  (error code: {error})")


def _print_tlv(data: bytes, depth: int) -> None:
    for item in tlv.decode_all(data):
        tag = tlv.tag_bytes(item.tag).hex().upper()
        if tlv.is_constructed(item.tag):
            click.echo(f"{'  ' * depth}{tag}")
            _print_tlv(item.value, depth + 1)
        else:
            click.echo(f"{'  ' * depth}{tag} {item.value.hex().upper()}")


@gp_group.command("tlv")
@click.argument("data", type=HexBytes())
def tlv_command(data: bytes) -> None:
    """Decode BER-TLV data into an indented tree."""
    _print_tlv(data, 0)


@gp_group.command("parse-status")
@click.option("--subset", type=click.Choice(list(SUBSETS)), default="apps", show_default=True)
@click.option("--legacy", is_flag=True, help="Legacy format (P2 '00') instead of TLV (P2 '02').")
@click.argument("response", type=HexBytes())
def parse_status_command(subset: str, legacy: bool, response: bytes) -> None:
    """Decode a GET STATUS response (data field, without SW) into Registry entries."""
    parse = registry.parse_legacy if legacy else registry.parse_tlv
    for entry in parse(SUBSETS[subset], response):
        privileges = ",".join(p.name or "" for p in entry.privileges) or "-"
        click.echo(f"{entry.aid.hex().upper()}  {entry.state.name}  {privileges}")
        for module in entry.modules:
            click.echo(f"  module {module.hex().upper()}")


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
