"""Service providers' webhook endpoints: registered with a signing secret shown once and kept sealed by the key
service, listed, removed (docs/api.md, "Webhooks"). Deliveries: tsm_core/webhooks/delivery.py.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy import select

from keyservice.policy import Purpose
from tsm_core.context import Tsm, now
from tsm_core.errors import InvalidRequest, NotFound
from tsm_core.jobs.perso import data_key
from tsm_core.registry import service as registry
from tsm_core.registry.models import Tenant
from tsm_core.webhooks import signing
from tsm_core.webhooks.models import WebhookEndpoint

URL_MAX: Final = 2048
LOOPBACK_NAMES: Final = frozenset({"localhost"})


@dataclass(frozen=True)
class EndpointView:
    """A webhook endpoint (never its secret)."""

    id: str
    sp: str
    url: str
    created_at: datetime


@dataclass(frozen=True)
class NewEndpoint:
    """An endpoint just registered: the only time its secret is shown."""

    view: EndpointView
    secret: str

    def __repr__(self) -> str:
        return f"NewEndpoint(view={self.view!r}, secret=<hidden>)"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in LOOPBACK_NAMES


def check_url(url: str) -> str:
    """An https URL (http only to this machine, for development), or InvalidRequest."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if len(url) > URL_MAX or not host or parts.username or parts.password or \
            not (parts.scheme == "https" or (parts.scheme == "http" and _loopback(host))):
        raise InvalidRequest(f"a webhook URL is https://HOST/... (http only to this machine), without credentials, "
                             f"at most {URL_MAX} characters")
    return url


def context_of(endpoint_id: str) -> bytes:
    """The sealing context of an endpoint's secret."""
    return f"webhook:{endpoint_id}".encode()


def _view(row: WebhookEndpoint, sp: str) -> EndpointView:
    return EndpointView(row.id, sp, row.url, row.created_at)


def register(tsm: Tsm, url: str) -> NewEndpoint:
    """A new endpoint for the calling SP; its secret sealed by the issuer's data key."""
    tsm.scope.only("sp", action="registering a webhook")
    check_url(url)
    endpoint_id = "wh_" + secrets.token_hex(8)
    secret = signing.new_secret()
    label = data_key(tsm)
    sealed = tsm.keys.apps.seal(tsm.request(Purpose.SERVICE, endpoint_id), label, secret, context_of(endpoint_id))
    with tsm.transaction() as db:
        sp = registry.tenant_row(db, tsm.scope.name, "sp")
        row = WebhookEndpoint(id=endpoint_id, sp_id=sp.id, url=url, secret_sealed=sealed.hex(), key_label=label,
                              created_at=now())
        db.add(row)
        db.flush()
        return NewEndpoint(_view(row, sp.name), signing.shown(secret))


def list_endpoints(tsm: Tsm) -> list[EndpointView]:
    """The SP's live endpoints (every SP's for the issuer), oldest first."""
    tsm.scope.only("sp", "issuer", action="listing webhooks")
    query = (select(WebhookEndpoint, Tenant.name).join(Tenant, Tenant.id == WebhookEndpoint.sp_id)
             .where(WebhookEndpoint.disabled_at.is_(None)).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))
    if tsm.scope.kind == "sp":
        query = query.where(Tenant.name == tsm.scope.name)
    with tsm.sessions() as db:
        return [_view(row, name) for row, name in db.execute(query)]


def remove(tsm: Tsm, endpoint_id: str) -> None:
    """Stop sending to an endpoint (its pending deliveries are dropped when next due)."""
    tsm.scope.only("sp", "issuer", action="removing a webhook")
    with tsm.transaction() as db:
        row = db.get(WebhookEndpoint, endpoint_id)
        sp = db.get(Tenant, row.sp_id) if row is not None else None
        if row is None or sp is None or row.disabled_at is not None or not tsm.scope.sees_sp(sp.name):
            raise NotFound(f"no webhook {endpoint_id!r}")
        row.disabled_at = now()
