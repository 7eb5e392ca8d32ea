"""The key service and the TSM context of this process, opened from the settings for the `tsm` commands."""

from __future__ import annotations

from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from keyservice.runtime import open_service
from keyservice.service import KeyService
from storage.config import load_settings
from storage.session import make_engine, session_factory
from tsm.identity import console_officer
from tsm_core.context import Tsm


def key_service() -> KeyService:
    """The unsealed key service for the configured token and database."""
    return open_service(load_settings())


@cache
def _sessions(url: str, busy_timeout: float) -> sessionmaker[Session]:
    return session_factory(make_engine(url, busy_timeout))


def sessions() -> sessionmaker[Session]:
    """Database sessions for the TSM services (one engine per process)."""
    settings = load_settings()
    return _sessions(settings.database_url, settings.database_busy_timeout)


def tsm_context() -> Tsm:
    """The TSM services' context for the officer at this console."""
    return Tsm(sessions(), key_service(), console_officer())
