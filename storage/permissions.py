"""File modes of the trust base: $TSM_HOME, the PIN file and its directory, the SQLite database.

They are created owner-only (directories 0700, files 0600) whatever the umask, and an existing one that
other users can read or write is refused with the `chmod` that fixes it (like OpenSSH's `StrictModes`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600
OTHERS: Final = 0o077
"""Group and other permission bits: none may be set on the trust base."""
OTHERS_WRITE: Final = 0o022


class InsecurePermissions(ValueError):
    """A file or directory of the trust base is open to other users."""

    code = "insecure_permissions"


def refuse_if_shared(path: Path, what: str, st: os.stat_result | None = None, bits: int = OTHERS) -> None:
    """Raise InsecurePermissions if `path` has any of `bits` (group/other permissions) set."""
    st = path.stat() if st is None else st
    mode = stat.S_IMODE(st.st_mode)
    if mode & bits:
        wanted = PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE
        raise InsecurePermissions(f"{what} {path} is open to other users (mode {mode:o}): "
                                  f"run `chmod {wanted:o} {path}`")


def make_private_dir(path: Path) -> None:
    """Create `path` and each missing parent with mode 0700 (set explicitly: the umask may be anything)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        os.chmod(directory, PRIVATE_DIR)


def make_private_file(path: Path) -> bool:
    """Create `path` empty with mode 0600 unless it exists; whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True
