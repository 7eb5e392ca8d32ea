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


class SecurityLevelNotAllowed(FlowError):
    """The card's SCP and "i" do not allow the security level asked for (GPCS 2.3.1 §E.5.2.2, Amd D §7.1.2.1).

    Raised on the host before EXTERNAL AUTHENTICATE (before INITIALIZE UPDATE when the card's recognition data
    named its SCP): the card would answer '6A86', and may count it as a failed authentication.
    """

    code = "security_level_not_allowed"


class KeyVersionNotFound(FlowError):
    """The card has no key set with the key version asked for: INITIALIZE UPDATE answered '6A88'
    (GPCS 2.3.1 §11.14.3); the message names the version and the ones the card's key information lists."""

    code = "key_version_not_found"


class WrongCard(FlowError):
    """The card's INITIALIZE UPDATE answer names key diversification data other than the SE's: another card is
    in the reader (or behind the phone) than the one the job is for."""

    code = "wrong_card"
    status = 409
