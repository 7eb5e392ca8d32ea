"""Typed errors of the card-management flows (`tsm_core.flows`)."""

from __future__ import annotations

from tsm_core.errors import TsmCoreError


class FlowError(TsmCoreError):
    """Base of every flow error."""

    code = "flow_error"


class CardCryptogramMismatch(FlowError):
    """The card cryptogram did not verify with the given keys: EXTERNAL AUTHENTICATE was not sent.

    Same code as the key service's `CryptogramMismatch`; the message adds what the card said about itself
    (key version, SCP) and how to find the right key, so one line tells the operator why.
    """

    code = "cryptogram_mismatch"


class EndlessPaging(FlowError):
    """The card kept answering '6310' (more data) beyond any plausible Registry size."""

    code = "gp_endless_paging"
