"""The key that signs the admin UI's session cookies: 32 random bytes in `$TSM_HOME/secrets/web-session.key`
(mode 0600), made on first start and shared by every gunicorn worker; deleting the file signs everyone out."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from storage.config import Settings

FILE_NAME: Final = "web-session.key"
KEY_BYTES: Final = 32


def key_path(settings: Settings) -> Path:
    return settings.pin_file.parent / FILE_NAME


def session_key(settings: Settings) -> bytes:
    """The session-signing key, created when missing: written to a private temporary file, then linked into
    place (atomic; two workers starting together agree on the first one linked)."""
    path = key_path(settings)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{FILE_NAME}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_bytes()
