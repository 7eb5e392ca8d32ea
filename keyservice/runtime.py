"""Opening the key service for this process from the settings (after fork: one HSM session per process)."""

from __future__ import annotations

import atexit
import os
from contextlib import suppress

from hsm_profiles import loader
from keyservice.errors import ConfigurationError, KeyServiceError
from keyservice.service import KeyService
from keyservice.strategy import profile_table
from softhsm.bootstrap import BootstrapError, load_pins
from storage.config import Settings
from storage.session import make_engine, session_factory

_open: dict[tuple[int, Settings], KeyService] = {}


def prepare_module_env(settings: Settings) -> None:
    """Point SoftHSM2 at the embedded configuration before its library is loaded."""
    if settings.softhsm_conf.is_file():
        os.environ["SOFTHSM2_CONF"] = str(settings.softhsm_conf)


def open_service(settings: Settings) -> KeyService:
    """The process's KeyService for `settings`, unsealed with the PIN file (opened once per process)."""
    key = (os.getpid(), settings)
    service = _open.get(key)
    if service is None:
        prepare_module_env(settings)
        try:
            profile = loader.load(settings.hsm_profile)
        except loader.ProfileError as exc:
            raise ConfigurationError(str(exc)) from None
        try:
            pins = load_pins(settings.pin_file)
        except BootstrapError as exc:
            raise ConfigurationError(str(exc)) from None
        service = KeyService(settings.pkcs11_module, settings.token_label,
                             session_factory(make_engine(settings.database_url, settings.database_busy_timeout)),
                             profile=profile.name,
                             strategies=profile_table(profile.strategies, profile.name))
        service.unseal(pins.user_pin)
        if not _open:
            atexit.register(_close_at_exit)
        _open[key] = service
    return service


def close_all(database_url: str | None = None) -> None:
    """Close every service this process opened (tests, shutdown), or those on `database_url`: sessions and
    database pools."""
    for key, service in list(_open.items()):
        if database_url is not None and key[1].database_url != database_url:
            continue
        if key[0] == os.getpid():  # a forked child closes only what it opened itself
            service.close()
        del _open[key]


def _close_at_exit() -> None:
    """At a normal end of the process, anchor the last audit records and close; the HSM or the database may
    already be gone (a test's scratch token), and then there is nothing left to anchor to."""
    with suppress(KeyServiceError):
        close_all()
