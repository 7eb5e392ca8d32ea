"""`tsm cardsim ...`: create, list, show and serve virtual GlobalPlatform cards (docs/cli.md, docs/cardsim.md).

The commands only parse arguments and call cardsim's public API (`cardsim.state`, `cardsim.profiles`,
`cardsim.vpcd`, `Card.transmit`); every failure is a typed error, printed by the root CLI as one line.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Final

import click

from cardsim.capbuild import DEMO_CAPS, demo_cap
from cardsim.errors import OutputFileError
from cardsim.lifecycle import is_locked
from cardsim.memory import free_memory
from cardsim.profiles import available_profiles, load_profile
from cardsim.state import dumps, load_card, new_card, save_card
from globalplatform import initupdate, sw
from tsm.output import emit_json, json_option, table
from tsm.params import HexByte, HexData, HostPort
from tsm_core.gp import commands

DEFAULT_VPCD: Final = "127.0.0.1:35963"
CARD_LOCKED: Final = 0x6283
"""SELECT of the ISD on a CARD_LOCKED card: selected, with a warning (GPCS 2.3.1 Table 11-85)."""

card_option = click.option("--card", "card_path", metavar="FILE", required=True,
                           type=click.Path(dir_okay=False, path_type=Path),
                           help="The card's state file (`tsm cardsim new`).")


@click.group("cardsim")
def cardsim_group() -> None:
    """Virtual GlobalPlatform cards (GPCS 2.3.1)."""


@cardsim_group.command("profiles")
@json_option
def profiles_command(as_json: bool) -> None:
    """List the card profiles."""
    rows = [(name, load_profile(name).description) for name in available_profiles()]
    if as_json:
        emit_json([{"name": name, "description": description} for name, description in rows])
    else:
        table(("PROFILE", "DESCRIPTION"), rows)


@cardsim_group.command("new")
@click.option("--profile", metavar="NAME", default=None,
              help="Profile name (see `tsm cardsim profiles`; default: default).")
@click.option("--out", metavar="FILE", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The state file to write.")
def new_command(profile: str | None, out: Path) -> None:
    """Manufacture a card and write its state file."""
    card = new_card(profile)
    save_card(card, out)
    click.echo(f"card {card.identity.kdd.hex().upper()} ({card.identity.profile}) written to {out}")


def _summary(card_path: Path) -> dict[str, Any]:
    card = load_card(card_path)
    registry = card.registry
    isd = registry.isd
    sd = isd.sd
    free = free_memory(registry, isd.aid)
    return {
        "profile": card.identity.profile,
        "kdd": card.identity.kdd.hex().upper(),
        "life_cycle": card.life_cycle.name,
        "isd": {"aid": isd.aid.hex().upper(), "scp": sd.scp, "i": sd.i,
                "sequence_counter": sd.sequence_counter, "key_versions": sorted(sd.keysets),
                "failed_authentications": sd.failed_authentications, "retry_limit": sd.retry_limit}
        if sd is not None else {"aid": isd.aid.hex().upper()},
        "free_memory": {"nv": free.nv, "volatile": free.volatile},
        "load_files": [{"aid": elf.aid.hex().upper(), "modules": len(elf.modules)}
                       for elf in registry.load_files.values()],
        "applications": [{"aid": app.aid.hex().upper(), "security_domain": app.is_sd,
                          "life_cycle": app.life_cycle, "locked": is_locked(app.life_cycle)}
                         for app in registry.apps.values() if app.aid != isd.aid],
    }


@cardsim_group.command("cap")
@click.argument("applet", type=click.Choice(sorted(DEMO_CAPS)))
@click.option("--out", metavar="FILE", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The CAP file to write.")
@click.option("--format", "form", type=click.Choice(["jar", "components"]), default="jar", show_default=True,
              help="jar: the JAR/ZIP a converter writes; components: the components concatenated, as LOAD sends "
                   "them.")
def cap_command(applet: str, out: Path, form: str) -> None:
    """Write a demo applet's CAP file (JCVM 3.0.5 §6), built by the simulator (docs/cap.md)."""
    image = demo_cap(applet)
    data = image.jar() if form == "jar" else image.load_file()
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise OutputFileError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"{applet} CAP file ({form}, {len(data)} bytes, package {image.spec.package_aid.hex().upper()}, "
               f"applet {image.spec.applet_aid.hex().upper()}) written to {out}")


@cardsim_group.command("show")
@card_option
@json_option
def show_command(card_path: Path, as_json: bool) -> None:
    """Summarize a card: identity, life cycle, key sets, registry, free memory."""
    card = _summary(card_path)
    if as_json:
        emit_json(card)
        return
    isd = card["isd"]
    click.echo(f"profile      {card['profile']}")
    click.echo(f"KDD          {card['kdd']}")
    click.echo(f"life cycle   {card['life_cycle']}")
    if "scp" in isd:
        click.echo(f"ISD          {isd['aid']}  SCP{isd['scp']:02X} i={isd['i']:02X}  "
                   f"counter {isd['sequence_counter']}")
        click.echo(f"key sets     {', '.join(f'{kvn:02X}' for kvn in isd['key_versions'])}  (failed authentications "
                   f"{isd['failed_authentications']}/{isd['retry_limit']})")
    free = card["free_memory"]
    click.echo(f"free memory  {free['nv']} bytes non-volatile, {free['volatile']} bytes volatile")
    for elf in card["load_files"]:
        click.echo(f"load file    {elf['aid']}  modules {elf['modules']}")
    for app in card["applications"]:
        kind = "SD " if app["security_domain"] else "app"
        click.echo(f"{kind}          {app['aid']}  state {app['life_cycle']:02X}{' LOCKED' if app['locked'] else ''}")


@cardsim_group.command("initialize-update")
@card_option
@click.option("--host-challenge", type=HexData(), required=True, help="The 8-byte host challenge, hex.")
@click.option("--kvn", type=HexByte(), default="00", show_default=True,
              help="Key version number, hex (00: the card's default key set).")
def initialize_update_command(card_path: Path, host_challenge: bytes, kvn: int) -> None:
    """Select the card's ISD and send INITIALIZE UPDATE (GPCS 2.3.1 §E.5.1, Amd D §7.1.1); print the card's
    answer without the status word, hex, as `tsm gp diagnose --init-update-response` takes it.

    No EXTERNAL AUTHENTICATE follows. The state file is saved (the card's counters may have moved).
    """
    capdu = initupdate.command(kvn, host_challenge)
    card = load_card(card_path)
    card.power_on()
    selected = card.transmit(commands.select().to_bytes())
    sw.check(int.from_bytes(selected[-2:], "big"), accept=(sw.Sw.SUCCESS, CARD_LOCKED))
    response = card.transmit(capdu)
    sw.check(int.from_bytes(response[-2:], "big"))
    save_card(card, card_path)
    click.echo(response[:-2].hex().upper())


@cardsim_group.command("serve")
@card_option
@click.option("--vpcd", type=HostPort(), is_flag=False, flag_value=DEFAULT_VPCD, default=DEFAULT_VPCD,
              show_default=True, help="pcscd's vpcd HOST:PORT (`--vpcd` alone: the default).")
def serve_command(card_path: Path, vpcd: tuple[str, int]) -> None:
    """Connect the card to pcscd (vsmartcard-vpcd) and answer APDUs until interrupted.

    The state file is rewritten after every APDU that changed the card's persistent state.
    """
    host, port = vpcd
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
