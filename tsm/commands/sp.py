"""`tsm sp ...` and `tsm vendor ...`: service providers and SE vendors (docs/cli.md)."""

from __future__ import annotations

import click

from tsm.output import emit_json, json_option, table
from tsm.service import tsm_context
from tsm_core.registry import service as registry


@click.group("sp")
def sp_group() -> None:
    """Service providers (banks, transit operators): the tenants whose apps and SSDs the TSM manages."""


@sp_group.command("add")
@click.argument("name")
@click.option("--mode", type=click.Choice(registry.SD_MODES), default="cm", show_default=True,
              help="GP mode of the SP's security domains: cm issuer-centric, am Authorized, dm Delegated Management.")
def sp_add(name: str, mode: str) -> None:
    """Register a service provider."""
    view = registry.add_tenant(tsm_context(), name, "sp", mode)
    click.echo(f"service provider {view.name} added ({view.sd_mode})")


@sp_group.command("list")
@json_option
def sp_list(as_json: bool) -> None:
    """The service providers."""
    found = registry.list_tenants(tsm_context(), "sp")
    if as_json:
        emit_json(found)
    else:
        table(("NAME", "MODE", "ADDED"), [(t.name, t.sd_mode, f"{t.created_at:%Y-%m-%d}") for t in found])


@click.group("vendor")
def vendor_group() -> None:
    """SE vendors: they announce SEs in batches (`tsm se import`) and hold their initial keys."""


@vendor_group.command("add")
@click.argument("name")
def vendor_add(name: str) -> None:
    """Register an SE vendor."""
    view = registry.add_tenant(tsm_context(), name, "vendor")
    click.echo(f"SE vendor {view.name} added")


@vendor_group.command("list")
@json_option
def vendor_list(as_json: bool) -> None:
    """The SE vendors."""
    found = registry.list_tenants(tsm_context(), "vendor")
    if as_json:
        emit_json(found)
    else:
        table(("NAME", "ADDED"), [(t.name, f"{t.created_at:%Y-%m-%d}") for t in found])
