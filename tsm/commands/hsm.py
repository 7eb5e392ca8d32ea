"""`tsm hsm info`: the HSM behind the key service, its profile and the strategy per cryptographic step."""

from __future__ import annotations

import click

from hsm_profiles import loader
from storage.config import load_settings
from tsm.output import emit_json, json_option, table
from tsm.service import key_service


@click.group("hsm")
def hsm_group() -> None:
    """The HSM behind the key service."""


@hsm_group.command("info")
@json_option
def hsm_info(as_json: bool) -> None:
    """The active profile, the mechanisms the token reports, any mismatch, and the strategy per step."""
    settings = load_settings()
    service = key_service()
    profile = loader.load(settings.hsm_profile)
    info = service.token_info()
    reported = service.mechanisms()
    names = sorted(name for name, value in loader.KNOWN.items() if value in reported)
    comparison = loader.compare(profile, reported)
    strategies = service.strategies()
    if as_json:
        emit_json({"token": info, "module": settings.pkcs11_module, "profile": profile.name,
                   "profile_tested": profile.tested, "mechanisms": names,
                   "declared_missing": comparison.declared_missing, "absent_present": comparison.absent_present,
                   "strategies": strategies})
        return
    if info.test_token:
        click.echo("!!! TEST TOKEN: clear test keys may be imported; never use it for production cards !!!")
    click.echo(f"token       {info.label} ({info.manufacturer} {info.model}, serial {info.serial})")
    click.echo(f"module      {settings.pkcs11_module} — {info.library}")
    click.echo(f"profile     {profile.name} ({profile.vendor}){'' if profile.tested else ' — UNTESTED'}")
    click.echo(f"mechanisms  {len(names)} reported: {' '.join(names)}")
    if comparison.matches:
        click.echo("profile matches the token")
    for name in comparison.declared_missing:
        click.echo(f"MISMATCH: profile declares {name}, the token does not report it")
    for name in comparison.absent_present:
        click.echo(f"MISMATCH: profile says {name} is absent, the token reports it")
    click.echo("strategy per step (WHERE: hsm = inside the HSM; host-memory = a session-class or imported key "
               "transits host memory, master keys never do; MECHANISMS: whether this token has them):")
    table(("STEP", "STRATEGY", "WHERE", "MECHANISMS"),
          [(s.step, s.strategy, "refused" if not s.supported else "host-memory" if s.key_in_host_memory else "hsm",
            "present" if s.mechanisms_present else "MISSING") for s in strategies])
