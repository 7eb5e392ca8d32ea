"""The errors the `tsm` command prints as one line: every typed error of the product (web/errors.py) and the
card simulator's, which only the edge drives; and the form of that line."""

from __future__ import annotations

from typing import Final

from cardsim.errors import CardSimError
from web.errors import EXPECTED_ERRORS

CLI_ERRORS: tuple[type[Exception], ...] = (*EXPECTED_ERRORS, CardSimError)
MAX_LINE: Final = 1000
"""An error line is cut here (a huge argument echoed in a message must not flood the terminal)."""


def error_line(code: str, message: str) -> str:
    """`error[code]: message` on one line: control characters escaped (no terminal escape sequences, no line
    breaks), cut at MAX_LINE characters."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)
    line = f"error[{code}]: {text}"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
