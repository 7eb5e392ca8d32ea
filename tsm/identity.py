"""The identity of the person at this console, taken at the edge (the `tsm` command).

Until the ceremonies bring authentication (password + TOTP), the console officer is named by `TSM_OPERATOR`,
else the login name; `keyservice.identity.Caller` refuses control characters and over-long names.
"""

from __future__ import annotations

import getpass
import os
import socket

from keyservice.identity import Caller, CallerKind


def console_officer() -> Caller:
    """The officer at this console (`TSM_OPERATOR`, else the login name)."""
    return Caller(os.environ.get("TSM_OPERATOR") or getpass.getuser(), CallerKind.OFFICER)


def worker_service() -> Caller:
    """A job worker of this host: a service, never an officer (it cannot create or change keys)."""
    return Caller(f"worker@{socket.gethostname()}"[:64], CallerKind.SERVICE)
