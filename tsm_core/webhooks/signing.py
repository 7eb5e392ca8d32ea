"""Webhook signatures as Standard Webhooks v1 defines them (https://www.standardwebhooks.com/, "Signature scheme"),
the way Stripe signs too: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the endpoint's secret,
sent base64 in `webhook-signature: v1,<signature>`; the receiver recomputes it and refuses a timestamp too far from
its clock (replay). A secret reads `whsec_` + base64 of 24 random bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES: Final = 24
VERSION: Final = "v1"
TOLERANCE_SECONDS: Final = 300
"""How far a receiver should accept the timestamp from its clock (Standard Webhooks' recommendation)."""


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def shown(secret: bytes) -> str:
    """The secret as the SP gets it (once)."""
    return SECRET_PREFIX + base64.b64encode(secret).decode()


def parse(text: str) -> bytes:
    """The secret bytes of `whsec_...` (ValueError otherwise)."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(text[len(SECRET_PREFIX):], validate=True)


def signature(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`."""
    mac = hmac.new(secret, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(mac).decode()}"


def headers(secret: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one signed delivery."""
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body), "Content-Type": "application/json"}


def verify(secret: bytes, message_id: str, timestamp: int, body: bytes, header: str, at: int) -> bool:
    """What a receiver does: one of the space-separated signatures matches, and the timestamp is recent."""
    if abs(at - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
