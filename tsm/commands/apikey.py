"""`tsm apikey ...`: machine credentials for the REST API (docs/api.md, "Authentication")."""

from __future__ import annotations

import click

from tsm.output import emit_json, json_option, table
from tsm.service import tsm_context
from tsm_core.apikeys import service as apikeys


@click.group("apikey")
def apikey_group() -> None:
    """API keys: one per SE vendor, service provider or device; the owner is the key's tenancy."""


@apikey_group.command("create")
@click.option("--sp", default=None, metavar="NAME", help="A key for this service provider.")
@click.option("--vendor", default=None, metavar="NAME", help="A key for this SE vendor.")
@click.option("--device", default=None, metavar="SE", help="A key for the device of this SE.")
@click.option("--component", default=None, metavar="NAME", help="A key for this TSM component (the key service's "
              "API).")
@click.option("--purpose", "purposes", multiple=True, type=click.Choice(sorted(apikeys.COMPONENT_PURPOSES)),
              metavar="PURPOSE", help="A key-service purpose the component may state (repeat; one at least).")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(sorted(apikeys.ALL_SCOPES)), metavar="SCOPE",
              help="An operation the key may call (repeat; default: all its owner's kind may).")
def apikey_create(sp: str | None, vendor: str | None, device: str | None, component: str | None,
                  purposes: tuple[str, ...], scopes: tuple[str, ...]) -> None:
    """Create a key; it is printed once, on the last line, and never stored in clear."""
    owners = [(kind, name) for kind, name in (("sp", sp), ("vendor", vendor), ("device", device),
                                              ("component", component)) if name]
    if len(owners) != 1:
        raise click.UsageError("give exactly one of --sp NAME, --vendor NAME, --device SE, --component NAME")
    kind, name = owners[0]
    made = apikeys.create(tsm_context(), kind, name, scopes, purposes)
    granted = f" (purposes {' '.join(made.view.purposes)})" if made.view.purposes else ""
    click.echo(f"API key {made.view.id} for {made.view.owner}: {' '.join(made.view.scopes)}{granted}")
    click.echo("shown once: store it now (Authorization: Bearer KEY)")
    click.echo(made.key)


@apikey_group.command("list")
@json_option
def apikey_list(as_json: bool) -> None:
    """The API keys (never their secrets)."""
    found = apikeys.list_keys(tsm_context())
    if as_json:
        emit_json(found)
        return
    table(("ID", "OWNER", "SCOPES", "CREATED", "REVOKED"),
          [(k.id, k.owner, ",".join(k.scopes), f"{k.created_at:%Y-%m-%d}",
            f"{k.revoked_at:%Y-%m-%d}" if k.revoked_at else "") for k in found])


@apikey_group.command("revoke")
@click.argument("key_id", metavar="ID")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    view = apikeys.revoke(tsm_context(), key_id)
    click.echo(f"API key {view.id} of {view.owner} revoked")
