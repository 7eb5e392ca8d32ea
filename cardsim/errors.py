"""Errors of the card simulator's host-facing side (profiles, state files, vpcd link).

Each class has a stable `code`; the root CLI prints `error[<code>]: <message>` on one line.
Card-side refusals are not exceptions: the card answers a status word (see `cardsim.sw`).
"""

from __future__ import annotations


class CardSimError(Exception):
    """Base of every cardsim error; `code` is stable and machine-readable."""

    code = "cardsim_error"


class ProfileNotFound(CardSimError):
    """No card profile with that name."""

    code = "cardsim_profile_not_found"


class ProfileError(CardSimError):
    """A profile file is malformed (unknown field, bad hex, unsupported SCP / i / diversification)."""

    code = "cardsim_profile_invalid"


class StateFileError(CardSimError):
    """A card state file cannot be read, parsed or written."""

    code = "cardsim_state_file"


class CardSimInputError(CardSimError):
    """Bad command-line input (e.g. a malformed HOST:PORT)."""

    code = "cardsim_bad_input"


class OutputFileError(CardSimError):
    """A file the simulator was asked to write (a demo CAP file) cannot be written."""

    code = "cardsim_output_file"
