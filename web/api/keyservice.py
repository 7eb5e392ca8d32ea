"""The key service for TSM components under /api/v1/key-service (docs/api.md, "Key service"): the Vault-transit-like
face of the HSM. Secure channels opened from a card's INITIALIZE UPDATE answer and used call by call (wrap,
unwrap, PUT KEY, encrypted DGIs), KCVs, and TR-31 key blocks from and to SE vendors.

Only a TSM component's API key reaches these views; each call states a purpose its key must grant (403
`purpose_not_granted`), and the key service audits it under the key with that purpose. Views parse, authorise,
call one service function (tsm_core/components) and render.
"""

from __future__ import annotations

from typing import Any, Final

from globalplatform.kcv import KcvMethod
from keyservice.channels import ChannelSession, ChannelSpec, DivMethod
from keyservice.policy import Purpose
from keyservice.vendor import KeyBlockHeader
from tsm_core.components import channels
from tsm_core.components import service as components
from tsm_core.components.channels import ChannelRequest, ChannelView
from web.api import keyservice_schemas as s
from web.api.context import api_key, requires, tsm
from web.api.idempotency import idempotent
from web.api.v1 import ERRORS, SECURITY, bp

TAG: Final = "Key service"
CHANNELS: Final = "key-service:channels"


def _component() -> components.Component:
    return components.Component(tsm(), frozenset(api_key().purposes))


def _hex(value: bytes) -> str | None:
    return value.hex().upper() if value else None


def _channel(view: ChannelView) -> dict[str, Any]:
    return {"id": view.id, "se_id": view.se_id, "sd_aid": view.sd_aid, "kvn": view.kvn, "purpose": view.purpose,
            "state": view.state, "scp": view.scp, "security_level": view.security_level,
            "expires_at": view.expires_at, "initialize_update": _hex(view.initialize_update),
            "external_authenticate": _hex(view.external_authenticate)}


def _bytes(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value is not None else None


@bp.post("/key-service/channels")
@requires(CHANNELS)
@idempotent
@bp.input(s.ChannelOpenIn, arg_name="body")
@bp.output(s.Channel, status_code=201)
@bp.doc(tags=[TAG], responses=[*ERRORS, 409], security=SECURITY)
def open_channel(body: dict[str, Any]) -> Any:
    """Open a secure channel on an SE's key set: with the card's INITIALIZE UPDATE answer (and the host challenge
    sent), the EXTERNAL AUTHENTICATE to send; without, the INITIALIZE UPDATE to send first."""
    want = ChannelRequest(body["se_id"], Purpose(body["purpose"]), body["sd_aid"], body["kvn"],
                          body["security_level"], _bytes(body["host_challenge"]), _bytes(body["card_response"]))
    return _channel(channels.open_channel(_component(), want)), 201


@bp.post("/key-service/channels/<channel_id>/authenticate")
@requires(CHANNELS)
@idempotent
@bp.input(s.AuthenticateIn, arg_name="body")
@bp.output(s.Channel)
@bp.doc(tags=[TAG], responses=[*ERRORS, 409], security=SECURITY)
def authenticate_channel(channel_id: str, body: dict[str, Any]) -> Any:
    """Verify the card's answer to the channel's INITIALIZE UPDATE: the EXTERNAL AUTHENTICATE to send."""
    return _channel(channels.authenticate(_component(), channel_id, bytes.fromhex(body["card_response"])))


@bp.post("/key-service/channels/<channel_id>/wrap")
@requires(CHANNELS)
@idempotent
@bp.input(s.CommandIn, arg_name="body")
@bp.output(s.CommandOut)
@bp.doc(tags=[TAG], responses=[*ERRORS, 409], security=SECURITY)
def wrap_command(channel_id: str, body: dict[str, Any]) -> Any:
    """Protect one command at the channel's security level (C-MAC, C-DEC); the channel's counters advance."""
    plain = bytes.fromhex(body["command"])
    return {"command": channels.use(_component(), channel_id, lambda c: c.wrap(plain)).hex().upper()}


@bp.post("/key-service/channels/<channel_id>/unwrap")
@requires(CHANNELS)
@idempotent
@bp.input(s.ResponseIn, arg_name="body")
@bp.output(s.ResponseOut)
@bp.doc(tags=[TAG], responses=[*ERRORS, 409], security=SECURITY)
def unwrap_response(channel_id: str, body: dict[str, Any]) -> Any:
    """Verify the R-MAC and decrypt R-ENC data of one response (data and status word back)."""
    raw = bytes.fromhex(body["response"])
    return {"response": channels.use(_component(), channel_id, lambda c: c.unwrap(raw)).hex().upper()}


@bp.post("/key-service/channels/<channel_id>/put-key")
@requires(CHANNELS)
@idempotent
@bp.input(s.PutKeyIn, arg_name="body")
@bp.output(s.PutKeyOut)
@bp.doc(tags=[TAG], responses=[*ERRORS, 409], security=SECURITY)
def put_key(channel_id: str, body: dict[str, Any]) -> Any:
    """A PUT KEY for a new key set (GPCS 2.3.1 §11.8), its keys under the channel's DEK, wrapped for the channel;
    the KCVs the card must answer with."""
    method = DivMethod(body["diversification"]) if body["diversification"] else None
    source = ChannelSpec(tuple(body["keys"]), method)

    def work(session: ChannelSession) -> dict[str, Any]:
        made = session.put_key(source, body["old_kvn"], body["new_kvn"])
        return {"command": session.wrap(made.apdu).hex().upper(), "new_kvn": made.new_kvn,
                "kcvs": [k.hex().upper() for k in made.kcvs]}

    return channels.use(_component(), channel_id, work)


@bp.post("/key-service/channels/<channel_id>/encrypted-dgis")
@requires(CHANNELS)
@idempotent
@bp.input(s.DgiIn, arg_name="body")
@bp.output(s.DgiOut)
@bp.doc(tags=[TAG], responses=[*ERRORS, 409], security=SECURITY)
def encrypt_dgi(channel_id: str, body: dict[str, Any]) -> Any:
    """A DGI value encrypted under the channel's DEK for STORE DATA (GPCS 2.3.1 §11.11.2.3)."""
    dgi, value = int(body["dgi"], 16), bytes.fromhex(body["value"])
    data = channels.use(_component(), channel_id, lambda c: c.encrypt_dgi(dgi, value))
    return {"dgi": body["dgi"].upper(), "data": data.hex().upper()}


@bp.delete("/key-service/channels/<channel_id>")
@requires(CHANNELS)
@bp.output({}, status_code=204)
@bp.doc(tags=[TAG], responses=ERRORS, security=SECURITY)
def close_channel(channel_id: str) -> Any:
    """Forget a channel handle."""
    channels.close(_component(), channel_id)
    return "", 204


@bp.get("/key-service/keys/<label>/kcv")
@requires("key-service:keys")
@bp.input(s.KcvQuery, location="query", arg_name="query")
@bp.output(s.KcvOut)
@bp.doc(tags=[TAG], responses=ERRORS, security=SECURITY)
def key_check_value(label: str, query: dict[str, Any]) -> Any:
    """The check value of an inventory key (GP: 3DES/AES over 01..; AES over zeros; AES-CMAC; HMAC)."""
    method = KcvMethod(query["method"]) if query["method"] else None
    value = components.kcv(_component(), Purpose(query["purpose"]), label, method, query["length"])
    return {"label": label, "kcv": value}


@bp.post("/key-service/key-blocks")
@requires("key-service:exchange")
@idempotent
@bp.input(s.KeyBlockIn, arg_name="body")
@bp.output(s.KeyOut, status_code=201)
@bp.doc(tags=[TAG], responses=[*ERRORS, 409], security=SECURITY)
def import_key_block(body: dict[str, Any]) -> Any:
    """A vendor's TR-31 key block (B, D) under a KBPK, recorded with its KCV checked (purpose VENDOR_IMPORT)."""
    to = components.received(body["label"], body["owner"], body["usage"], body["kvn"], body["key_id"])
    view = components.import_key_block(_component(), body["kbpk"], body["key_block"], to, body["expected_kcv"])
    return {"label": view.label, "usage": view.usage, "state": view.state, "kcv": view.kcv}, 201


@bp.post("/key-service/key-block-exports")
@requires("key-service:exchange")
@idempotent
@bp.input(s.KeyBlockExportIn, arg_name="body")
@bp.output(s.KeyBlockOut)
@bp.doc(tags=[TAG], responses=ERRORS, security=SECURITY)
def export_key_block(body: dict[str, Any]) -> Any:
    """An exportable key as a TR-31 key block for a vendor (purpose VENDOR_EXPORT)."""
    header = KeyBlockHeader(body["usage"], body["mode"], body["key_version"], body["exportability"])
    return {"key_block": components.export_key_block(_component(), body["label"], body["kbpk"], header)}
