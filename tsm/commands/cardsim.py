"""`tsm cardsim ...`: create, list, show and serve virtual GlobalPlatform cards.

The commands only parse arguments and call `cardsim.state` / `cardsim.profiles` / `cardsim.vpcd`; every
failure is a `CardSimError`, printed by the root CLI as one line.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

import click

from cardsim.errors import CardSimInputError
from cardsim.lifecycle import is_locked
from cardsim.memory import free_memory
from cardsim.profiles import available_profiles, load_profile
from cardsim.state import dumps, load_card, new_card, save_card

DEFAULT_VPCD: Final = "127.0.0.1:35963"


def parse_host_port(value: str) -> tuple[str, int]:
    """HOST:PORT (HOST may be empty for 127.0.0.1); `CardSimInputError` otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise CardSimInputError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


@click.group("cardsim")
def cardsim_group() -> None:
    """Virtual GlobalPlatform cards (GPCS 2.3.1)."""


@cardsim_group.command("profiles")
def profiles_command() -> None:
    """List the card profiles."""
    for name in available_profiles():
        click.echo(f"{name:14} {load_profile(name).description}")


@cardsim_group.command("new")
@click.option("--profile", "profile", default=None, help="Profile name (see `tsm cardsim profiles`).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="State file.")
def new_command(profile: str | None, out: Path) -> None:
    """Manufacture a card and write its state file."""
    card = new_card(profile)
    save_card(card, out)
    click.echo(f"card {card.identity.kdd.hex().upper()} ({card.identity.profile}) written to {out}")


@cardsim_group.command("show")
@click.option("--card", "card_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def show_command(card_path: Path) -> None:
    """Summarize a card: identity, life cycle, key sets, registry, free memory."""
    card = load_card(card_path)
    registry = card.registry
    isd = registry.isd
    sd = isd.sd
    click.echo(f"profile      {card.identity.profile}")
    click.echo(f"KDD          {card.identity.kdd.hex().upper()}")
    click.echo(f"life cycle   {card.life_cycle.name}")
    if sd is not None:
        click.echo(f"ISD          {isd.aid.hex().upper()}  SCP{sd.scp:02X} i={sd.i:02X}  counter {sd.sequence_counter}")
        kvns = ", ".join(f"{kvn:02X}" for kvn in sorted(sd.keysets))
        click.echo(f"key sets     {kvns}  (failed authentications {sd.failed_authentications}/{sd.retry_limit})")
    free = free_memory(registry, isd.aid)
    click.echo(f"free memory  {free.nv} bytes non-volatile, {free.volatile} bytes volatile")
    for elf in registry.load_files.values():
        click.echo(f"load file    {elf.aid.hex().upper()}  modules {len(elf.modules)}")
    for app in registry.apps.values():
        if app.aid == isd.aid:
            continue
        kind = "SD " if app.is_sd else "app"
        lock = " LOCKED" if is_locked(app.life_cycle) else ""
        click.echo(f"{kind}          {app.aid.hex().upper()}  state {app.life_cycle:02X}{lock}")


@cardsim_group.command("serve")
@click.option("--card", "card_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--vpcd", "vpcd", default=DEFAULT_VPCD, show_default=True, help="pcscd's vpcd HOST:PORT.")
def serve_command(card_path: Path, vpcd: str) -> None:
    """Connect the card to pcscd (vsmartcard-vpcd) and answer APDUs until interrupted.

    The state file is rewritten after every APDU that changed the card's persistent state.
    """
    host, port = parse_host_port(vpcd)
    card = load_card(card_path)
    from cardsim import vpcd as vpcd_link  # another module's owner; imported only when serving

    last = dumps(card)

    def on_change() -> None:
        nonlocal last
        current = dumps(card)
        if current != last:
            save_card(card, card_path)
            last = current

    stop = threading.Event()
    click.echo(f"serving {card_path} on vpcd {host}:{port} (Ctrl-C to stop)")
    try:
        vpcd_link.serve(card, host, port, on_change=on_change, stop=stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        on_change()
