"""`tsm kat PATH...` and `tsm selftest`: known-answer vectors through the production code path (docs/cli.md).

Both print one line a vector (`PASS file:id`, `FAIL file:id: what`, `ERROR file:id: error`) and the summary
`N passed, M failed`; exit 1 when a vector failed.
"""

from __future__ import annotations

from pathlib import Path

import click

from keyservice import kat
from keyservice.errors import SelfTestFailed
from tsm.output import emit_json, json_option
from tsm.service import key_service


def _report(report: kat.KatReport, as_json: bool) -> None:
    if as_json:
        emit_json({"passed": report.passed, "failed": report.failed, "outcomes": report.outcomes})
    else:
        for line in report.lines():
            click.echo(line)
    if report.failed:
        raise SystemExit(1)


@click.command("kat")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
def kat_command(paths: tuple[Path, ...], as_json: bool) -> None:
    """Run known-answer vector files or directories (docs/kat-format.md) on a scratch SoftHSM2 token."""
    with kat.scratch_hsm() as hsm:
        report = kat.run_kat(list(paths), hsm)
    _report(report, as_json)


@click.command("selftest")
@json_option
def selftest_command(as_json: bool) -> None:
    """Run the shipped published vectors through the production code path on the configured token."""
    try:
        report = key_service().run_selftest()
    except SelfTestFailed as exc:
        if as_json:
            emit_json({"problem": str(exc)})
        else:
            click.echo(f"self-test FAILED: {exc}")
        raise SystemExit(1) from None
    _report(report, as_json)
