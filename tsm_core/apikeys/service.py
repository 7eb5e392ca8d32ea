"""Creating, listing, revoking and checking API keys (docs/api.md, "Authentication").

A key reads `tsm_<id>_<secret>`: `id` (12 hex digits) finds the row, `secret` (32 random bytes, base64url) is
checked against its SHA-256 in constant time. A plain hash is enough because the secret is high-entropy: no
dictionary or brute-force search reaches 256 random bits, so neither a slow hash (argon2id, for passwords) nor
a server-side pepper would add strength, and verification costs one hash per request. The key's owner becomes
the tenancy of every call it makes (`Scope`); its scopes name the API operations it may call. A TSM component's
key also names the key-service purposes (keyservice.policy.Purpose) it may state (docs/api.md, "Key service").
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from keyservice.policy import Purpose
from tsm_core.apikeys.models import ApiKey
from tsm_core.context import Tsm, now
from tsm_core.errors import Forbidden, InvalidRequest, NotFound, TsmCoreError
from tsm_core.registry import service as registry
from tsm_core.tenancy import Scope, ScopeKind

PREFIX: Final = "tsm"
KEY: Final = re.compile(r"tsm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
OWNER_KINDS: Final = ("sp", "vendor", "device", "component")
SCOPES: Final[dict[str, frozenset[str]]] = {
    "sp": frozenset({"apps:read", "secure-elements:read", "services:read", "services:write", "operations:read",
                     "jobs:read", "webhooks:read", "webhooks:write"}),
    "vendor": frozenset({"secure-elements:read", "secure-elements:write"}),
    "device": frozenset({"apps:read", "secure-elements:read", "services:read", "services:write",
                         "operations:read", "jobs:read", "relay-sessions:write"}),
    "component": frozenset({"key-service:channels", "key-service:keys", "key-service:exchange"}),
}
"""The operations each kind of owner may be given (all of them when none is named at creation)."""
ALL_SCOPES: Final = frozenset().union(*SCOPES.values())
COMPONENT_PURPOSES: Final = frozenset({Purpose.SE_PERSO, Purpose.SE_MANAGEMENT, Purpose.KEY_ROTATION,
                                       Purpose.VENDOR_IMPORT, Purpose.VENDOR_EXPORT, Purpose.DIAGNOSTIC,
                                       Purpose.SERVICE})
"""The purposes a TSM component's key may name (never the key service's own: AUDIT, SELFTEST, KEY_MANAGEMENT)."""


class Unauthenticated(TsmCoreError):
    """No API key, a malformed one, an unknown or revoked one, or a wrong secret (never which)."""

    code = "unauthenticated"
    status = 401


class ScopeMissing(Forbidden):
    """The API key does not carry the scope the operation needs."""

    code = "scope_missing"


@dataclass(frozen=True)
class ApiKeyView:
    """An API key as listed: never its secret."""

    id: str
    owner: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    purposes: tuple[str, ...] = ()
    """A TSM component's key-service purposes (empty for other owners)."""

    @property
    def scope(self) -> Scope:
        """The tenancy the key's calls act for."""
        kind, _, name = self.owner.partition(":")
        return Scope(cast(ScopeKind, kind), name)

    def allows(self, operation: str) -> bool:
        return operation in self.scopes


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: the only time its full value exists outside the caller's hands."""

    view: ApiKeyView
    key: str

    def __repr__(self) -> str:
        return f"NewApiKey(view={self.view!r}, key=<hidden>)"


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(row.id, f"{row.owner_kind}:{row.owner_name}", tuple(row.scopes.split()), row.created_by,
                      row.created_at, row.revoked_at, tuple((row.purposes or "").split()))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_owner(tsm: Tsm, kind: str, name: str) -> None:
    """The owner exists: a registered SP or vendor, or a registered SE."""
    if kind not in OWNER_KINDS:
        raise InvalidRequest(f"an API key's owner is one of {', '.join(OWNER_KINDS)}, not {kind!r}")
    if kind == "component":
        registry.check_name(name, "a TSM component's name")
        return
    with tsm.sessions() as db:
        if kind == "device":
            registry.se_row(db, name)
        else:
            registry.tenant_row(db, name, kind)


def _check_purposes(kind: str, purposes: tuple[str, ...]) -> str:
    """A component names at least one purpose it may state, others none."""
    if kind != "component":
        if purposes:
            raise InvalidRequest("only a TSM component's key names key-service purposes (--component NAME)")
        return ""
    open_to = sorted(COMPONENT_PURPOSES)
    wrong = sorted(set(purposes) - set(open_to))
    if wrong or not purposes:
        raise InvalidRequest(f"a component's key names one or more purposes of {', '.join(open_to)}"
                             + (f", not {', '.join(wrong)}" if wrong else ""))
    return " ".join(sorted(set(purposes)))


def create(tsm: Tsm, kind: str, name: str, scopes: tuple[str, ...] = (),
           purposes: tuple[str, ...] = ()) -> NewApiKey:
    """A new key for the owner with `scopes` (all its kind may have, when none) and, for a TSM component, the
    key-service `purposes` it may state; the issuer creates keys."""
    tsm.scope.only("issuer", action="creating API keys")
    _check_owner(tsm, kind, name)
    granted = _check_purposes(kind, purposes)
    allowed = SCOPES[kind]
    wrong = sorted(set(scopes) - allowed)
    if wrong:
        raise InvalidRequest(f"scope(s) {', '.join(wrong)} not open to a {kind} key (open: "
                             f"{', '.join(sorted(allowed))})")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKey(id=key_id, owner_kind=kind, owner_name=name, scopes=" ".join(sorted(set(scopes) or allowed)),
                 secret_sha256=_digest(secret), created_by=tsm.caller.name, created_at=now(), purposes=granted)
    with tsm.transaction() as db:
        db.add(row)
        db.flush()
        view = _view(row)
    return NewApiKey(view, f"{PREFIX}_{key_id}_{secret}")


def list_keys(tsm: Tsm) -> list[ApiKeyView]:
    """Every key, oldest first (the issuer's view)."""
    tsm.scope.only("issuer", action="listing API keys")
    with tsm.sessions() as db:
        return [_view(row) for row in db.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).scalars()]


def revoke(tsm: Tsm, key_id: str) -> ApiKeyView:
    """Revoke a key at once (a revoked key stays revoked)."""
    tsm.scope.only("issuer", action="revoking API keys")
    with tsm.transaction() as db:
        row = db.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id!r} (tsm apikey list)")
        if row.revoked_at is None:
            row.revoked_at = now()
        return _view(row)


def authenticate(sessions: sessionmaker[Session], presented: str) -> ApiKeyView:
    """The live key `presented` is, or Unauthenticated (the same answer for every reason)."""
    match = KEY.fullmatch(presented)
    if match is None:
        raise Unauthenticated("a valid API key is required: Authorization: Bearer tsm_<id>_<secret>")
    with sessions() as db:
        row = db.get(ApiKey, match.group(1))
        digest = row.secret_sha256 if row is not None else "0" * 64
        if not hmac.compare_digest(digest, _digest(match.group(2))) or row is None or row.revoked_at is not None:
            raise Unauthenticated("a valid API key is required: Authorization: Bearer tsm_<id>_<secret>")
        return _view(row)
