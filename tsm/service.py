"""The key service of this process, opened from the settings for the `tsm` commands."""

from __future__ import annotations

from keyservice.runtime import open_service
from keyservice.service import KeyService
from storage.config import load_settings


def key_service() -> KeyService:
    """The unsealed key service for the configured token and database."""
    return open_service(load_settings())
