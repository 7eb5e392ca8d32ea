"""`tsm audit ...`: read and verify the tamper-evident audit chain (docs/cli.md)."""

from __future__ import annotations

import click

from keyservice.errors import AuditChainBroken
from keyservice.views import AuditView
from tsm.output import emit_json, json_option, table
from tsm.service import key_service


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit chain."""


@audit_group.command("verify")
@json_option
def audit_verify(as_json: bool) -> None:
    """Verify every record's link, hash and HSM MAC, and the HSM anchor (exit 1 if the chain is broken)."""
    try:
        report = key_service().audit.verify()
    except AuditChainBroken as exc:
        if as_json:
            emit_json({"intact": False, "problem": str(exc)})
        else:
            click.echo(f"audit chain BROKEN: {exc}")
        raise SystemExit(1) from None
    if as_json:
        emit_json({"intact": True, **vars(report)})
    else:
        click.echo(f"audit chain intact: {report.records} records, head {report.head_hash[:16]}…")


def _keys(view: AuditView) -> str:
    return ",".join(f"{key[0]}({key[1]})" if len(key) > 1 and key[1] else key[0] for key in view.keys)


@audit_group.command("list")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="How many records, newest first.")
@json_option
def audit_list(limit: int, as_json: bool) -> None:
    """Show the newest records, newest first."""
    views = key_service().audit.records(limit)
    if as_json:
        emit_json(views)
        return
    table(("SEQ", "TIME", "ACTOR", "OPERATION", "PURPOSE", "OUTCOME", "TARGET", "KEYS", "DETAIL"),
          [(v.seq, v.ts[:19], v.actor, v.operation, v.purpose, v.outcome, v.target, _keys(v), v.detail)
           for v in views])
