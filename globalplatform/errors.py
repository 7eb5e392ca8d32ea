"""Typed errors of the GlobalPlatform vocabulary: bad encodings in, bad responses out.

Each error carries a stable `code` (the RFC 9457 `type` suffix of the API, the `error[<code>]` tag of the CLI).
"""

from __future__ import annotations


class GpError(Exception):
    """Base of every error of `globalplatform` and of the TSM's GP builders and parsers (`tsm_core.gp`)."""

    code = "gp_error"


class InvalidParameter(GpError):
    """A builder was given a value that cannot be encoded (AID length, P1 value, block size, ...)."""

    code = "gp_invalid_parameter"


class ApduFormatError(GpError):
    """Bytes that are not a well-formed C-APDU or R-APDU (ISO 7816-4 §5.1, §5.2)."""

    code = "gp_apdu_format"


class TlvError(GpError):
    """Bytes that are not well-formed BER-TLV (ISO 7816-4 §5.2.2.1 / ITU-T X.690 §8.1), or a value that
    does not fit its declared definition."""

    code = "gp_tlv_format"


class StatusParseError(GpError):
    """A GET STATUS response that does not follow GPCS 2.3.1 §11.4.3 (TLV or legacy format)."""

    code = "gp_status_parse"


class CardDataError(GpError):
    """Card recognition data, a Security Domain's FCI or a key information template that does not have its GPCS
    layout (GPCS 2.3.1 Annex H, §11.9.3.1, §11.3.3.1)."""

    code = "gp_card_data_format"


class CardStatusError(GpError):
    """The card answered with a status word other than success; `sw` holds it (e.g. 0x6A88).

    Subclasses group the status words by meaning; see `globalplatform.sw` for the table.
    """

    code = "card_status"

    def __init__(self, sw: int, meaning: str) -> None:
        super().__init__(f"card returned SW {sw:04X}: {meaning}")
        self.sw = sw
        self.meaning = meaning


class WrongLengthOrParameters(CardStatusError):
    """The card refused the encoding: wrong Lc/Le, P1-P2 or data (ISO 7816-4 §5.6: 67xx, 6Axx checking)."""

    code = "card_wrong_parameters"


class FunctionNotSupported(CardStatusError):
    """CLA, INS or the requested function is not supported (6D00, 6E00, 6A81, 68xx)."""

    code = "card_not_supported"


class SecurityStatusNotSatisfied(CardStatusError):
    """Authentication or secure messaging missing or insufficient (6982, 6882)."""

    code = "card_security_status"


class ConditionsNotSatisfied(CardStatusError):
    """The card's state forbids the command (6985, 6283 card locked)."""

    code = "card_conditions_not_satisfied"


class ReferencedDataNotFound(CardStatusError):
    """The AID, key or object named by the command does not exist (6A82, 6A88)."""

    code = "card_not_found"


class CardMemoryError(CardStatusError):
    """The card ran out of memory or its memory failed (6A84, 6581)."""

    code = "card_memory"


class CardExecutionError(CardStatusError):
    """Any other error status word (64xx, 6F00, application-specific 94xx, unknown SWs)."""

    code = "card_execution_error"
