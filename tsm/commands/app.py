"""`tsm app ...`: the app catalog — an SP submits a CAP file, the operator reviews it (docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

import click

from tsm.output import emit_json, json_option, table
from tsm.service import tsm_context
from tsm_core.catalog import service as catalog


@click.group("app")
def app_group() -> None:
    """Apps: submission from a CAP file, review, listing."""


@app_group.command("submit")
@click.option("--sp", required=True, help="The service provider submitting.")
@click.option("--cap", "cap_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The CAP file (JAR or concatenated components).")
@click.option("--instance-aid", default="", metavar="AID", help="Instance AID (default: the applet's AID).")
@click.option("--module-aid", default="", metavar="AID", help="Which applet of the package (default: the first).")
@click.option("--name", default="", help="A name for the app (default: the package's).")
@click.option("--privileges", default="00", show_default=True, help="Privileges, 1 or 3 bytes hex.")
@click.option("--params", "install_params", default="", help="Application install parameters (C9 value), hex.")
@click.option("--nv-quota", type=click.IntRange(0, 0xFFFFFFFF), default=None, help="Non-volatile quota (C8), bytes.")
@click.option("--volatile-quota", type=click.IntRange(0, 0xFFFFFFFF), default=None, help="Volatile quota (C7).")
@click.option("--target", "targets", multiple=True, metavar="PROFILE", help="SE profile the app is meant for.")
@click.option("--perso", default="", help="Personalization profile: 'DGI=hex' values and 'DGI!' per-card DGIs.")
def app_submit(sp: str, cap_path: Path, instance_aid: str, module_aid: str, name: str, privileges: str,
               install_params: str, nv_quota: int | None, volatile_quota: int | None, targets: tuple[str, ...],
               perso: str) -> None:
    """Submit a load file and an app on it (review pending); the app id is the last line."""
    app_id = catalog.submit(tsm_context(), catalog.Submission(
        sp, cap_path.read_bytes(), name, module_aid, instance_aid, privileges, install_params, nv_quota,
        volatile_quota, targets, perso))
    view = catalog.app(tsm_context(), app_id)
    click.echo(f"package {view.load_file.package_aid} {view.load_file.version}  {view.load_file.size} bytes  "
               f"sha256 {view.load_file.sha256}")
    click.echo(f"applet  {view.module_aid} -> instance {view.instance_aid}  (review pending)")
    click.echo(app_id)


@app_group.command("review")
@click.argument("app_id", metavar="APP")
@click.option("--approve", is_flag=True, help="Approve (refused when the review finds a problem).")
@click.option("--reject", is_flag=True, help="Reject, with --reason.")
@click.option("--reason", default="", help="Why (required to reject).")
def app_review(app_id: str, approve: bool, reject: bool, reason: str) -> None:
    """Approve or reject a submitted app."""
    if approve == reject:
        raise click.UsageError("give exactly one of --approve and --reject")
    view = catalog.review(tsm_context(), app_id, approve=approve, reason=reason)
    click.echo(f"app {view.id} {view.review}{': ' + view.review_reason if view.review_reason else ''}")


@app_group.command("list")
@click.option("--sp", default=None, help="Only this SP's apps.")
@json_option
def app_list(sp: str | None, as_json: bool) -> None:
    """The catalog."""
    found = catalog.list_apps(tsm_context(), sp)
    if as_json:
        emit_json(found)
        return
    table(("APP", "SP", "NAME", "PACKAGE", "VERSION", "INSTANCE", "SIZE", "REVIEW"),
          [(a.id, a.sp, a.name, a.load_file.package_aid, a.load_file.version, a.instance_aid, a.load_file.size,
            a.review) for a in found])
