"""Typed errors of the ceremonies (each with a stable `code` and HTTP `status`, like keyservice/errors.py); errors
of the key service (refused approvals, a wrong KCV, a failed authentication) pass through unchanged."""

from __future__ import annotations


class CeremonyError(Exception):
    """Base of every ceremony error; a broken shipped definition is one too."""

    code = "ceremony_error"
    status = 500


class InvalidCeremony(CeremonyError):
    """An unknown ceremony type or step, a missing or malformed parameter or input."""

    code = "invalid_ceremony"
    status = 400


class CeremonyNotFound(CeremonyError):
    """No ceremony with this id."""

    code = "ceremony_not_found"
    status = 404


class CeremonyClosed(CeremonyError):
    """The ceremony is completed, aborted or timed out: nothing more happens in it."""

    code = "ceremony_closed"
    status = 409


class OutOfTurn(CeremonyError):
    """A step signed out of order, by a person not in the step's role, or by one who may not sign it."""

    code = "out_of_turn"
    status = 409


class DutiesNotSegregated(CeremonyError):
    """One person in two roles of one ceremony, or approving their own request."""

    code = "duties_not_segregated"
    status = 403


class NotYetDue(CeremonyError):
    """A scheduled step signed before its date."""

    code = "not_yet_due"
    status = 409


class EvidenceMismatch(CeremonyError):
    """An exported transcript does not match what the audit chain anchors (tampered, or not this ceremony's)."""

    code = "evidence_mismatch"
    status = 422
