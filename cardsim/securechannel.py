"""What SCP02 and SCP03 have in common on the card side: security levels and the session interface
(GPCS 2.3.1 10.2 and 11.1.3; Amd D 5.1)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntFlag, unique

from cardsim.apdu import CommandApdu, Response
from cardsim.sw import SW, ApduError


@unique
class SecurityLevel(IntFlag):
    """P1 of EXTERNAL AUTHENTICATE (GPCS 2.3.1 E.5.2.2 for SCP02; Amd D 7.1.2.1 for SCP03)."""

    AUTHENTICATED = 0x00
    """No secure messaging after authentication."""
    C_MAC = 0x01
    """Commands carry a C-MAC."""
    C_DECRYPTION = 0x02
    """Command data is encrypted (needs C-MAC)."""
    R_MAC = 0x10
    """Responses carry an R-MAC."""
    R_ENCRYPTION = 0x20
    """Response data is encrypted (SCP03 only; needs R-MAC and C-DECRYPTION)."""


#: Security levels a session may request (GPCS 2.3.1 E.5.2.2 for SCP02; Amd D 7.1.2.1 for SCP03 adds 33).
VALID_LEVELS: frozenset[int] = frozenset({0x00, 0x01, 0x03, 0x11, 0x13, 0x33})


class SecureChannel(ABC):
    """One secure channel session between INITIALIZE UPDATE and the end of the session.

    `authenticated` turns true after a verified EXTERNAL AUTHENTICATE. The card drops the object on any
    security error, on SELECT and on power-on (GPCS 2.3.1 10.2.3).
    """

    scp: int

    def __init__(self, level: SecurityLevel = SecurityLevel.AUTHENTICATED) -> None:
        self.level = level
        self.authenticated = False

    @abstractmethod
    def initialize_update_response(self) -> bytes:
        """Response data of INITIALIZE UPDATE (without the status word)."""

    @abstractmethod
    def supports_level(self, level: int) -> bool:
        """Whether this protocol and its i parameter allow the requested security level."""

    @abstractmethod
    def verify_host_cryptogram(self, host_cryptogram: bytes) -> bool:
        """Check the EXTERNAL AUTHENTICATE host cryptogram."""

    @abstractmethod
    def unwrap(self, apdu: CommandApdu, *, first: bool = False) -> CommandApdu:
        """Verify C-MAC and decrypt (per the security level, or C-MAC only when `first`); 6982 on failure."""

    @abstractmethod
    def wrap(self, response: Response) -> Response:
        """Add R-MAC / R-ENC per the security level."""

    @abstractmethod
    def decrypt_sensitive(self, data: bytes) -> bytes:
        """Decrypt key components / sensitive STORE DATA with the DEK (session DEK for SCP02, static for SCP03)."""

    def external_authenticate(self, apdu: CommandApdu) -> bool:
        """Process EXTERNAL AUTHENTICATE: True when authenticated, False on a cryptogram/MAC mismatch.

        Refuses unsupported security levels with 6A86 (no retry counted) and a wrong length with 6700.
        """
        if apdu.p1 not in VALID_LEVELS or not self.supports_level(apdu.p1) or apdu.p2 != 0:
            raise ApduError(SW.WRONG_P1P2, "security level not supported")
        if len(apdu.data) != 16 or not apdu.secure_messaging:
            raise ApduError(SW.WRONG_LENGTH, "EXTERNAL AUTHENTICATE needs host cryptogram and C-MAC")
        try:
            plain = self.unwrap(apdu, first=True)
        except ApduError:
            return False
        if not self.verify_host_cryptogram(plain.data):
            return False
        self.level = SecurityLevel(apdu.p1)
        self.authenticated = True
        return True
