"""`tsm webhook ...`: service providers' webhooks (docs/api.md, "Webhooks")."""

from __future__ import annotations

import click

from tsm.output import emit_json, json_option, table
from tsm.service import tsm_context
from tsm_core.webhooks import delivery
from tsm_core.webhooks import service as webhooks


@click.group("webhook")
def webhook_group() -> None:
    """Webhooks: SPs register them over the API; deliveries are sent by `tsm job worker` (PostgreSQL) or here."""


@webhook_group.command("list")
@json_option
def webhook_list(as_json: bool) -> None:
    """Every SP's webhook endpoints (never their secrets)."""
    found = webhooks.list_endpoints(tsm_context())
    if as_json:
        emit_json(found)
        return
    table(("ID", "SP", "URL", "CREATED"), [(e.id, e.sp, e.url, f"{e.created_at:%Y-%m-%d}") for e in found])


@webhook_group.command("deliver")
def webhook_deliver() -> None:
    """Send the deliveries whose time has come, once (the embedded SQLite default has no worker)."""
    run = delivery.deliver_due(tsm_context())
    click.echo(f"{len(run.delivered)} delivered, {len(run.retrying)} to retry, {len(run.failed)} given up")
