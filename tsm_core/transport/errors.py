"""Typed transport errors: what went wrong between the TSM and the card, never a library traceback."""

from __future__ import annotations

from tsm_core.errors import TsmCoreError


class TransportError(TsmCoreError):
    """Base of every transport error."""

    code = "transport_error"


class PcscUnavailable(TransportError):
    """The PC/SC service (pcscd) is not running or refused the context."""

    code = "pcsc_unavailable"


class NoReader(TransportError):
    """No reader matches the requested name or index (or no reader at all)."""

    code = "no_reader"


class NoCard(TransportError):
    """The reader exists but holds no card."""

    code = "no_card"


class CardRemoved(TransportError):
    """The card went away (or was reset by someone else) while connected."""

    code = "card_removed"


class NotConnected(TransportError):
    """`transmit` was called before `connect` or after `close`."""

    code = "not_connected"


class TransmitFailed(TransportError):
    """The exchange failed for another reason (reader error, timeout, malformed response)."""

    code = "transmit_failed"


class RelayError(TransportError):
    """Base of the errors of the phone relay path."""

    code = "relay_error"


class RelaySessionNotFound(RelayError):
    """No relay session has this id."""

    code = "relay_session_not_found"


class RelaySessionExpired(RelayError):
    """The relay session's lifetime is over; a new session is needed."""

    code = "relay_session_expired"


class RelaySessionClosed(RelayError):
    """The TSM closed the relay session: the phone has nothing more to do."""

    code = "relay_session_closed"


class RelaySessionForeign(RelayError):
    """The session is bound to another SE than the one the caller speaks for."""

    code = "relay_session_foreign"


class RelaySessionIdInvalid(RelayError):
    """A session id chosen by the caller is not 16 to 64 URL-safe characters, or is already in use."""

    code = "relay_session_id_invalid"


class RelayListenFailed(RelayError):
    """The relay endpoint cannot listen on the address given (a bad host, a port in use or not allowed)."""

    code = "relay_listen_failed"


class RelayProtocolError(RelayError):
    """A batch or an answer does not follow the relay wire format (docs/relay.md)."""

    code = "relay_protocol"


class RelayTimeout(RelayError):
    """The phone did not answer a batch in time (or never contacted the session)."""

    code = "relay_timeout"


class RelayUnauthenticated(RelayError):
    """The relay endpoint wants the API key of the device that opened the session over the API (RFC 6750 §3.1,
    401) and got none, or one it does not know."""

    code = "relay_unauthenticated"


class RelayAccessDenied(RelayError):
    """The phone's access control refused the channel to the target applet (SERAM UNGRANTED_ACCESS; OMAPI
    `SecurityException`)."""

    code = "relay_access_denied"


class RelayUnreachable(RelayError):
    """The relay endpoint could not be reached several times in a row (reference client)."""

    code = "relay_unreachable"
