"""The errors the `tsm` command prints as one line: every typed error of the product (web/errors.py) and the
card simulator's, which only the edge drives."""

from __future__ import annotations

from cardsim.errors import CardSimError
from web.errors import EXPECTED_ERRORS

CLI_ERRORS: tuple[type[Exception], ...] = (*EXPECTED_ERRORS, CardSimError)
