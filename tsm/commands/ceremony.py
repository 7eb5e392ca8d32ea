"""`tsm ceremony ...`: key ceremonies under dual control at the console (docs/ceremonies.md, docs/cli.md).

Views only: each command parses, reads the person's credentials (`--as NAME`, password and current TOTP code from
`--credentials FILE` or stdin: tsm/auth.py, never from the command line or the environment), calls one operation of
the ceremony service and prints. What a step shows once (a generated component, a provisioning URI, a key block)
is printed once and never stored. The rollout planner of key rotations is the TSM core's (`tsm se rollout-keys`).
"""

from __future__ import annotations

from pathlib import Path

import click

from ceremonies.service import CeremonyService
from ceremonies.views import CeremonyView
from keyservice.errors import InvalidInput
from keyservice.identity import Caller, CallerKind
from keyservice.people import Credentials
from tsm.auth import person_options
from tsm.identity import console_officer
from tsm.output import emit_json, json_option, table

INPUT_MAX = 65536
Acting = tuple[str, Credentials]
"""`--as NAME` and the credentials read for them (tsm/auth.py)."""


def caller_of(name: str, role: str) -> Caller:
    """The key-service caller of an authenticated person: officers are officers, vendors vendors, others services."""
    kind = {"officer": CallerKind.OFFICER, "vendor": CallerKind.VENDOR}.get(role, CallerKind.SERVICE)
    return Caller(name, kind)


def inputs(path: Path | None) -> dict[str, str]:
    """`key=value` lines of a step's input file (a component and its KCV, a KCV to confirm, a key block)."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")[:INPUT_MAX]
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the input file: {type(exc).__name__}") from None
    found = {}
    for line in text.splitlines():
        if line.strip():
            key, sep, value = line.partition("=")
            if not sep:
                raise InvalidInput("an input file holds key=value lines (component=..., kcv=..., block=...)")
            found[key.strip()] = value.strip()
    return found


def params(pairs: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not K=V", param_hint="'--param'")
        found[key] = value
    return found


def service() -> CeremonyService:
    from tsm.service import key_service, sessions, tsm_context
    from tsm_core.jobs.service import rollout

    return CeremonyService(key_service(), sessions(), caller_of,
                           planner=lambda kvn: rollout(tsm_context(), kvn))


def _print(view: CeremonyView) -> None:
    table(("STEP", "ROLE", "ACTION", "SIGNED-BY", "TITLE"),
          [[s.number, s.role, s.action + (" *" if s.approval else ""), s.signed_by or "", s.title]
           for s in view.steps])
    click.echo(f"state      {view.state}{' (' + view.abort_reason + ')' if view.abort_reason else ''}")
    click.echo(f"next       {view.next_step or '-'}")
    click.echo(f"approvals  {', '.join(f'{a.approver}@{a.step}' for a in view.approvals) or '-'}")
    for key, value in sorted(view.outputs.items()):
        click.echo(f"{key:<10} {value}")


@click.group("ceremony")
def ceremony_group() -> None:
    """Key ceremonies: scripted steps, roles, approvals, evidence (docs/ceremonies.md)."""


@ceremony_group.command("types")
@json_option
def ceremony_types(as_json: bool) -> None:
    """The shipped ceremony types."""
    found = CeremonyService.types()
    if as_json:
        emit_json([{"type": d.type, "title": d.title, "roles": d.roles,
                    "params": [p.name for p in d.params]} for d in found])
    else:
        table(("TYPE", "ROLES", "TITLE"), [[d.type, ",".join(d.roles), d.title] for d in found])


@ceremony_group.command("list")
@json_option
def ceremony_list(as_json: bool) -> None:
    """Every ceremony, its state and next step."""
    found = service().list()
    if as_json:
        emit_json([{"id": v.id, "type": v.type, "state": v.state, "next_step": v.next_step} for v in found])
    else:
        table(("ID", "TYPE", "STATE", "REQUESTER", "NEXT"),
              [[v.id, v.type, v.state, v.requester, v.next_step or "-"] for v in found])


@ceremony_group.command("start")
@click.argument("kind", metavar="TYPE")
@click.option("--param", "pairs", multiple=True, metavar="K=V", help="A parameter of the ceremony (repeatable).")
@person_options
def ceremony_start(kind: str, pairs: tuple[str, ...], person: Acting) -> None:
    """Start a ceremony (an officer: its requester); prints the ceremony id last."""
    view = service().start(kind, params(pairs), *person)
    _print(view)
    click.echo(view.id)


@ceremony_group.command("join")
@click.argument("cid", metavar="ID")
@person_options
@click.option("--role", required=True, type=click.Choice(["officer", "custodian", "auditor", "operator", "vendor",
                                                          "sp", "admin"]), help="The role taken in this ceremony.")
def ceremony_join(cid: str, role: str, person: Acting) -> None:
    """Join a ceremony in one role."""
    _print(service().join(cid, role, *person))


@ceremony_group.command("sign")
@click.argument("cid", metavar="ID")
@click.argument("step", type=click.IntRange(1, 99))
@person_options
@click.option("--input", "input_file", type=click.Path(dir_okay=False, path_type=Path),
              help="key=value lines the step needs (component=HEX, kcv=HEX, block=..., password=...).")
def ceremony_sign(cid: str, step: int, person: Acting, input_file: Path | None) -> None:
    """Sign a step (its effect is made, then the sign-off recorded); what it shows once is printed once."""
    given = inputs(input_file)
    result = service().sign(cid, step, *person, given)
    _print(result.ceremony)
    for key, value in result.shown.items():
        click.echo(f"SHOWN ONCE {key}: {value}")


@ceremony_group.command("approve")
@click.argument("cid", metavar="ID")
@person_options
def ceremony_approve(cid: str, person: Acting) -> None:
    """Approve the next privileged step of a ceremony (re-authenticated by the key service)."""
    _print(service().approve(cid, *person))


@ceremony_group.command("abort")
@click.argument("cid", metavar="ID")
@person_options
@click.option("--reason", required=True, help="Why the ceremony is aborted (recorded).")
def ceremony_abort(cid: str, reason: str, person: Acting) -> None:
    """Abort a ceremony: sealed components deleted, never-activated keys destroyed."""
    _print(service().abort(cid, reason, *person))


@ceremony_group.command("show")
@click.argument("cid", metavar="ID")
@json_option
def ceremony_show(cid: str, as_json: bool) -> None:
    """A ceremony's steps, who signed them, the next step and the approvals so far."""
    view = service().show(cid)
    if as_json:
        emit_json(view)
    else:
        _print(view)


@ceremony_group.command("export")
@click.argument("cid", metavar="ID")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The JSON transcript; the printable HTML goes beside it (.html).")
def ceremony_export(cid: str, out: Path) -> None:
    """The transcript as JSON and printable HTML, its SHA-256 anchored in the audit chain."""
    document, page = service().export(cid, console_officer())
    try:
        out.write_text(document, encoding="utf-8")
        out.with_suffix(".html").write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {out.name}: {type(exc).__name__}") from None
    click.echo(f"{out}\n{out.with_suffix('.html')}")


@ceremony_group.command("verify")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
def ceremony_verify(path: Path) -> None:
    """Check an exported transcript against the audit chain (evidence_mismatch when altered)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {type(exc).__name__}") from None
    click.echo(f"{service().verify(text)}: transcript intact and anchored in the audit chain")
