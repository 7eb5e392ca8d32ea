"""`tsm se ...`: the SE registry — discover a card, import a vendor's batch, list, show (with the card side by
side), rotate the ISD keys, SE profiles (docs/cli.md, docs/tsm.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from globalplatform.scp import SecurityLevel
from keyservice.channels import ChannelSpec, DivMethod
from keyservice.policy import Purpose
from storage.config import load_settings
from tsm.cards import card_given, card_options, card_transport, require_card, target_of
from tsm.commands.jobs import print_job, run_now
from tsm.output import emit_json, json_option, table
from tsm.params import HexByte
from tsm.service import tsm_context
from tsm_core.flows.channel import ChannelSessionLike, IsdInfo
from tsm_core.flows.list_content import CardContent, list_content
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.registry import batch, discovery
from tsm_core.registry import service as registry
from tsm_core.registry.views import EntryView, SeView

DIVERSIFICATIONS = ("none", "emv", "visa2", "visa", "kdf3")


@click.group("se")
def se_group() -> None:
    """Secure elements: discovery, vendor batches, the registry, ISD key rotation."""


@se_group.command("discover")
@card_options
@click.option("--key", "keys", metavar="LABEL", multiple=True, required=True,
              help="ISD key label: once (ENC = MAC = DEK, or the KMC with --div) or three times (ENC MAC DEK).")
@click.option("--div", type=click.Choice(DIVERSIFICATIONS), default="none", show_default=True,
              help="Diversify the card keys from the KMC given with --key.")
@click.option("--kvn", type=HexByte(), default="00", show_default=True,
              help="Key version for INITIALIZE UPDATE, hex (00: the card's default key set).")
@click.option("--level", type=HexByte(), default="01", show_default=True, help="Security level, hex.")
@click.option("--device-kind", type=click.Choice(registry.DEVICE_KINDS), default="card", show_default=True)
@click.option("--vendor", default="", help="The SE vendor (tsm vendor add).")
@click.option("--initial-ssd-key", default="", metavar="LABEL",
              help="Key label a new SSD starts with on this card model (the vendor's), for its SE profile.")
@click.option("--profile", "profile_name", default="", metavar="NAME",
              help="SE profile name (default: from SCP, i, diversification and ISD AID).")
@json_option
def se_discover(reader: str | None, card_path: Path | None, relay: str | None, relay_listen: tuple[str, int] | None,
                keys: tuple[str, ...], div: str, kvn: int, level: int, device_kind: str, vendor: str,
                initial_ssd_key: str, profile_name: str, as_json: bool) -> None:
    """Read a card (CPLC, IIN, CIN, KDD, recognition data, keys, free memory, Registry), open its ISD with the
    given key as proof, and register it; the SE id is the last line. Not over --relay (no SE is known yet: a
    phone's SE is registered from its vendor's batch, `tsm se import`)."""
    require_card(reader, card_path, relay, se_known=False)
    given = discovery.Discovery(keys, div, kvn, level, device_kind, vendor, initial_ssd_key=initial_ssd_key,
                                profile=profile_name)
    tsm = tsm_context()
    with card_transport(reader, card_path) as transport:
        se_id, survey = discovery.discover_se(tsm, transport, given, target_of(reader, card_path))
    view = registry.show(tsm, se_id)
    if as_json:
        emit_json({"se": view, "unread": [{"tag": f"{u.tag:04X}", "sw": f"{u.sw:04X}", "reason": u.reason}
                                          for u in survey.unread]})
        return
    channel = survey.channel
    click.echo(f"profile    {view.profile.name}")
    click.echo(f"ISD        {view.isd.aid}  SCP{channel.scp:02X} i={view.profile.i:02X}  key version "
               f"{channel.key_version:02X}  (opened at level {channel.security_level:02X})")
    click.echo(f"KDD        {view.kdd}")
    click.echo(f"CIN/IIN    {view.cin or '-'} / {view.iin or '-'}")
    click.echo(f"life cycle {view.life_cycle or '-'}   free NV {_memory(view.free_nv)}  volatile "
               f"{_memory(view.free_volatile)}")
    click.echo(f"content    {len(view.content)} Registry entries")
    for unread in survey.unread:
        click.echo(f"unread     {unread.tag:04X}: {unread.sw:04X} {unread.reason}")
    click.echo(se_id)


def _memory(value: int | None) -> str:
    return "-" if value is None else f"{value} B"


@se_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def se_import(file: Path) -> None:
    """Register a vendor's batch of SEs (JSON or CSV, docs/tsm.md), all or none."""
    registrations = batch.parse_batch(file.read_bytes())
    ids = registry.import_batch(tsm_context(), registrations)
    click.echo(f"{len(ids)} secure elements imported")


@se_group.command("list")
@click.option("--vendor", default=None, help="Only this vendor's SEs.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--after", default="", metavar="SE", help="List the SEs after this id (paging).")
@json_option
def se_list(vendor: str | None, limit: int, after: str, as_json: bool) -> None:
    """The registered SEs, by id."""
    found = registry.list_ses(tsm_context(), vendor=vendor, limit=limit, after=after)
    if as_json:
        emit_json(found)
        return
    table(("SE", "PROFILE", "KIND", "VENDOR", "LIFE CYCLE", "SDS", "SEEN"),
          [(s.id, s.profile, s.device_kind, s.vendor, s.life_cycle, s.domains, "yes" if s.seen else "no")
           for s in found])


def _card_content(view: SeView, reader: str | None, card_path: Path | None, relay: str | None,
                  listen: tuple[str, int] | None) -> CardContent:
    """The card's Registry, read over its ISD with the key set the registry names."""
    keys = view.isd.active_key_set
    if keys is None:
        raise click.UsageError(f"SE {view.id} has no ISD key set in the registry")
    method = None if keys.diversification in ("", "none") else DivMethod(keys.diversification)
    spec = ChannelSpec(keys.keys, method, SecurityLevel.C_MAC, keys.kvn)
    tsm = tsm_context()
    request = tsm.request(Purpose.SE_MANAGEMENT, view.id)

    def open_channel(isd: IsdInfo) -> ChannelSessionLike:
        return tsm.keys.channels.open(request, replace(spec, aid=isd.aid, i=isd.i))

    with card_transport(reader, card_path, relay, se_id=view.id, listen=listen) as transport:
        return list_content(transport, SecurityLevel.C_MAC, open_channel)


def _card_entries(content: CardContent) -> dict[str, tuple[str, int]]:
    found = {e.aid.hex().upper(): ("isd", e.life_cycle) for e in content.isd}
    found |= {e.aid.hex().upper(): ("sd" if e.is_security_domain else "app", e.life_cycle)
              for e in content.applications}
    found |= {e.aid.hex().upper(): ("elf", e.life_cycle) for e in content.load_files}
    return found


def _side_by_side(entries: tuple[EntryView, ...], card: dict[str, tuple[str, int]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    known = {e.aid: e for e in entries}
    for aid in sorted(set(known) | set(card)):
        mine, theirs = known.get(aid), card.get(aid)
        kind = (mine.kind if mine else theirs[0] if theirs else "")
        left = f"{mine.life_cycle:02X}" if mine else "absent"
        right = f"{theirs[1]:02X}" if theirs else "absent"
        rows.append((aid, kind, left, right, "yes" if left == right else "NO"))
    return rows


@se_group.command("show")
@click.argument("se_id", metavar="SE")
@card_options
@json_option
def se_show(se_id: str, reader: str | None, card_path: Path | None, relay: str | None,
            relay_listen: tuple[str, int] | None, as_json: bool) -> None:
    """What the registry holds about an SE; with a card (optional), the registry and the card side by side."""
    given = card_given(reader, card_path, relay)
    view = registry.show(tsm_context(), se_id)
    card = _card_entries(_card_content(view, reader, card_path, relay, relay_listen)) if given else None
    if as_json:
        emit_json({"se": view, "card": None if card is None else
                   [{"aid": aid, "kind": kind, "life_cycle": f"{state:02X}"} for aid, (kind, state) in card.items()]})
        return
    click.echo(f"SE         {view.id}  ({view.device_kind}, profile {view.profile.name})")
    click.echo(f"KDD        {view.kdd}   CIN {view.cin or '-'}   IIN {view.iin or '-'}")
    click.echo(f"life cycle {view.life_cycle or '-'}   free NV {_memory(view.free_nv)}")
    click.echo("")
    table(("SD", "MODE", "SP", "PRIVILEGES", "KEY SETS"),
          [(d.aid, d.mode, d.sp, d.privileges, " ".join(f"{k.kvn:02X}{'*' if k.active else ''}:{'+'.join(k.keys)}"
                                                      f"/{k.diversification}" for k in d.key_sets))
           for d in view.domains])
    click.echo("")
    if card is None:
        table(("AID", "KIND", "LIFE CYCLE", "ASSOCIATED SD"),
              [(e.aid, e.kind, f"{e.life_cycle:02X}", e.associated_sd) for e in view.content])
    else:
        table(("AID", "KIND", "REGISTRY", "CARD", "SAME"), _side_by_side(view.content, card))


@se_group.command("rotate-keys")
@click.argument("se_id", metavar="SE")
@click.option("--to-kvn", type=HexByte(), required=True, help="The new key version, hex (01..7F).")
@click.option("--sd", "sd_aid", default=None, metavar="AID", help="An SSD's AID instead of the ISD.")
@card_options
def se_rotate_keys(se_id: str, to_kvn: int, sd_aid: str | None, reader: str | None, card_path: Path | None,
                   relay: str | None, relay_listen: tuple[str, int] | None) -> None:
    """Give the ISD (or an SSD) a new key version diversified from the issuer's KMC (or the SP's master key),
    as a job run now; the job id is the last line."""
    require_card(reader, card_path, relay)
    tsm = tsm_context()
    job_id = jobs.rotate_keys(tsm, se_id, to_kvn, sd_aid)
    print_job(run_now(tsm, job_id, reader, card_path, relay=relay, listen=relay_listen))


@se_group.command("rollout-keys")
@click.option("--to-kvn", type=HexByte(), required=True, help="The new key version, hex (01..7F).")
@click.option("--sp", default=None, help="Rotate this SP's SSDs instead of the ISDs.")
@click.option("--enqueue", is_flag=True, help="Queue the jobs for the workers (PostgreSQL).")
def se_rollout_keys(to_kvn: int, sp: str | None, enqueue: bool) -> None:
    """Plan a rotation job for every SE not yet at the key version; prints the job ids."""
    from tsm_core.jobs import queue  # Procrastinate only when jobs are queued: it slows every command's start

    tsm = tsm_context()
    created = jobs.rollout(tsm, to_kvn, sp=sp)
    app = queue.make_app(load_settings().database_url) if enqueue and created else None
    for job_id in created:
        click.echo(job_id if app is None else f"{job_id} queued (task {queue.enqueue(app, tsm, job_id)})")
    click.echo(f"{len(created)} rotation jobs to key version {to_kvn:02X}")


@se_group.command("key-versions")
@click.option("--sp", default=None, help="This SP's SSDs instead of the ISDs.")
@json_option
def se_key_versions(sp: str | None, as_json: bool) -> None:
    """How many SEs use each key version (ISD, or an SP's SSDs)."""
    counts = jobs.key_versions(tsm_context(), sp)
    if as_json:
        emit_json({f"{kvn:02X}": count for kvn, count in counts.items()})
    else:
        table(("KVN", "SES"), [(f"{kvn:02X}", count) for kvn, count in counts.items()])


@se_group.command("profiles")
@json_option
def se_profiles(as_json: bool) -> None:
    """The SE profiles."""
    found = registry.list_profiles(tsm_context())
    if as_json:
        emit_json(found)
        return
    table(("NAME", "SCP", "I", "DIV", "ISD", "INITIAL SSD KEY"),
          [(p.name, f"{p.scp:02X}", f"{p.i:02X}", p.diversification, p.isd_aid, p.initial_ssd_key) for p in found])


@se_group.command("profile")
@click.argument("name")
@click.option("--initial-ssd-key", required=True, metavar="LABEL",
              help="Key label a new SSD starts with on this card model (the vendor's).")
def se_profile(name: str, initial_ssd_key: str) -> None:
    """Set what an SE profile needs besides what the card says."""
    view = registry.set_initial_ssd_key(tsm_context(), name, initial_ssd_key)
    click.echo(f"profile {view.name}: initial SSD key {view.initial_ssd_key}")


@se_group.command("sync")
@click.argument("se_id", metavar="SE")
@card_options
def se_sync(se_id: str, reader: str | None, card_path: Path | None, relay: str | None,
            relay_listen: tuple[str, int] | None) -> None:
    """The device is reachable: run the card-side actions waiting for its next contact (locks, deletions)."""
    require_card(reader, card_path, relay)
    tsm = tsm_context()
    se_id = registry.show(tsm, se_id).id  # an unknown SE is refused before a relay session waits for it
    with card_transport(reader, card_path, relay, se_id=se_id, listen=relay_listen) as transport:
        ran = lifecycle.contact(tsm, se_id, transport)
    table(("JOB", "KIND", "STATE", "ERROR"), [(j.id, j.kind, j.state, j.error) for j in ran])
    click.echo(f"{len(ran)} waiting job(s) run")
