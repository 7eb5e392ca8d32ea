"""`tsm init`: create the embedded default under $TSM_HOME (idempotent).

SoftHSM2 configuration and token with generated PINs (0600 file), the database migrated by Alembic, and
the audit key inside the HSM. A token is a test token only if it was created as one.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyservice.errors import ConfigurationError
from keyservice.runtime import open_service, prepare_module_env
from softhsm import bootstrap
from storage.config import DEFAULT_MODULE, Settings
from storage.permissions import make_private_dir
from storage.session import upgrade


@dataclass(frozen=True)
class InitReport:
    """What `tsm init` found and did."""

    token_created: bool
    test_token: bool
    audit_key_kcv: str


def initialise(settings: Settings, test_token: bool = False) -> InitReport:
    """Create whatever of the embedded default is missing; never touch what exists."""
    make_private_dir(settings.home)
    created = False
    if settings.pkcs11_module == DEFAULT_MODULE:
        bootstrap.write_conf(settings.softhsm_conf, settings.token_dir)
        prepare_module_env(settings)
        if not bootstrap.token_exists(settings.pkcs11_module, settings.token_label):
            pins = bootstrap.generate_pins()
            bootstrap.init_token(settings.pkcs11_module, settings.token_label, pins)
            bootstrap.save_pins(settings.pin_file, pins)
            created = True
    elif not settings.pin_file.is_file():
        raise ConfigurationError(f"an external HSM needs its PIN file at {settings.pin_file}")
    upgrade(settings.database_url)
    report = open_service(settings).initialise(test_token=test_token)
    return InitReport(created, report.test_token, report.audit_key_kcv)
