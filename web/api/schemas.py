"""The API's request and response schemas (marshmallow, via APIFlask): the OpenAPI document is generated from
these, requests are validated against them and responses serialised through them (docs/api.md)."""

from __future__ import annotations

from typing import Final

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp

from globalplatform.cplc import CPLC_FIELDS

MAX_PAGE: Final = 500
DEFAULT_PAGE: Final = 50
def whole(pattern: str) -> Regexp:
    r"""A validator the WHOLE value must match: marshmallow's Regexp anchors only at the start, and Python's `$`
    also admits a final newline; `(?![\s\S])` ends the string in Python and ECMA-262 alike (the OpenAPI pattern)."""
    return Regexp(rf"^(?:{pattern})(?![\s\S])")


ID: Final = whole(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
ACTIONS: Final = ("lock", "unlock", "suspend", "resume", "unsubscribe")
OPERATION_STATES: Final = ("PENDING", "WAITING_DEVICE", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


class PageQuery(Schema):
    limit = Integer(load_default=DEFAULT_PAGE, validate=Range(1, MAX_PAGE))
    cursor = String(load_default=None, validate=Length(1, 200))


class SecureElementQuery(PageQuery):
    se_id = String(load_default=None, validate=ID)
    cin = String(load_default=None, validate=whole(r"[0-9A-Fa-f]{2,64}"))
    cplc_field = String(load_default=None, validate=OneOf(CPLC_FIELDS),
                        metadata={"description": "A CPLC field (GPCS 2.3.1 Annex H.6); give cplc_value too."})
    cplc_value = String(load_default=None, validate=whole(r"[0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}"),
                        metadata={"description": "The field's value, hex (2 or 4 bytes)."})


class JobQuery(PageQuery):
    se_id = String(load_default=None, validate=ID)


class Page(Schema):
    next = String(required=True, allow_none=True, metadata={"description": "The next page's URL, or null."})


class SecureElementSummary(Schema):
    id = String(required=True)
    profile = String(required=True)
    device_kind = String(required=True)
    vendor = String(required=True)
    life_cycle = String(required=True)
    domains = Integer(required=True)
    seen = Boolean(required=True)


class SecureElementPage(Page):
    items = List(Nested(SecureElementSummary), required=True)


class KeyVersion(Schema):
    kvn = Integer(required=True)
    diversification = String(required=True)
    active = Boolean(required=True)


class SecurityDomain(Schema):
    aid = String(required=True)
    parent_aid = String(required=True)
    mode = String(required=True)
    sp = String(required=True)
    privileges = String(required=True)
    life_cycle = String(required=True)
    nv_quota = Integer(required=True, allow_none=True)
    key_versions = List(Nested(KeyVersion), required=True)


class CardEntry(Schema):
    aid = String(required=True)
    kind = String(required=True)
    life_cycle = Integer(required=True)
    associated_sd = String(required=True)


class SecureElement(Schema):
    id = String(required=True)
    cin = String(required=True)
    iin = String(required=True)
    cplc = String(required=True)
    device_kind = String(required=True)
    profile = String(required=True)
    vendor = String(required=True)
    life_cycle = String(required=True)
    free_nv = Integer(required=True, allow_none=True)
    registered_at = DateTime(required=True)
    seen_at = DateTime(required=True, allow_none=True)
    domains = List(Nested(SecurityDomain), required=True)
    content = List(Nested(CardEntry), required=True)


class SeEntryIn(Schema):
    kdd = String(required=True, validate=whole(r"[0-9A-Fa-f]{2,32}"))
    profile = String(required=True, validate=Length(1, 64))
    isd_key = List(String(validate=Length(1, 64)), required=True, validate=Length(1, 3))
    isd_kvn = String(load_default="FF", validate=whole(r"[0-9A-Fa-f]{2}"), metadata={"description": "Hex byte."})
    cplc = String(load_default="", validate=whole(r"([0-9A-Fa-f]{2})*"))
    cin = String(load_default="", validate=whole(r"([0-9A-Fa-f]{2}){0,32}"))
    iin = String(load_default="", validate=whole(r"([0-9A-Fa-f]{2}){0,32}"))
    device_kind = String(load_default="card", validate=OneOf(("phone", "wearable", "iot", "card")))


class SeBatchIn(Schema):
    vendor = String(required=True, validate=Length(1, 64))
    profiles = Dict(keys=String(validate=Length(1, 64)), values=Dict(), load_default=dict,
                    metadata={"description": "SE profiles by name: {scp, i, diversification, isd_aid, ...} "
                                             "(docs/tsm.md, Vendor batches)."})
    secure_elements = List(Nested(SeEntryIn), required=True, validate=Length(1, 10_000))


class SeBatchOut(Schema):
    ids = List(String(), required=True)


class LoadFile(Schema):
    package_aid = String(required=True)
    version = String(required=True)
    size = Integer(required=True)
    sha256 = String(required=True)


class App(Schema):
    id = String(required=True)
    sp = String(required=True)
    name = String(required=True)
    instance_aid = String(required=True)
    review = String(required=True)
    target_profiles = List(String(), required=True)
    purse = Boolean(required=True)
    load_file = Nested(LoadFile, required=True)
    submitted_at = DateTime(required=True)


class AppPage(Page):
    items = List(Nested(App), required=True)


class ServiceOrderIn(Schema):
    se_id = String(required=True, validate=ID)
    app_id = String(required=True, validate=ID)


class ServiceActionIn(Schema):
    action = String(required=True, validate=OneOf(ACTIONS))


class ServiceEvent(Schema):
    at = DateTime(required=True)
    operation = String(required=True)
    from_state = String(required=True)
    to_state = String(required=True)
    detail = String(required=True)


class Service(Schema):
    id = String(required=True)
    se_id = String(required=True)
    app_id = String(required=True)
    sp = String(required=True)
    instance_aid = String(required=True)
    state = String(required=True)
    card_locked = Boolean(required=True)
    reason = String(required=True)
    card_number = String(required=True, metadata={"description": "Masked: all but the last four digits."})
    balance = Integer(required=True, allow_none=True)
    created_at = DateTime(required=True)
    updated_at = DateTime(required=True)
    operations = List(String(), required=True, metadata={"description": "Ids of the operations on it."})
    history = List(Nested(ServiceEvent), required=True)


class ServicePage(Page):
    items = List(Nested(Service), required=True)


class Step(Schema):
    name = String(required=True)
    state = String(required=True)
    finished_at = DateTime(required=True, allow_none=True)


class Operation(Schema):
    id = String(required=True)
    kind = String(required=True)
    state = String(required=True, validate=OneOf(OPERATION_STATES))
    progress = Integer(required=True, validate=Range(0, 100), metadata={"description": "Percent of steps done."})
    se_id = String(required=True)
    app_id = String(required=True, allow_none=True)
    error = String(required=True)
    created_at = DateTime(required=True)
    finished_at = DateTime(required=True, allow_none=True)
    steps = List(Nested(Step), required=True)


class ServiceOrdered(Schema):
    service_id = String(required=True)
    operation = Nested(Operation, required=True)


class ServiceActionOut(Schema):
    service = Nested(Service, required=True)
    message = String(required=True)
    operation = Nested(Operation, required=True, allow_none=True)


class Job(Schema):
    id = String(required=True)
    kind = String(required=True)
    se_id = String(required=True)
    app_id = String(required=True, allow_none=True)
    state = String(required=True)
    error = String(required=True)
    attempts = Integer(required=True)
    created_at = DateTime(required=True)
    finished_at = DateTime(required=True, allow_none=True)
    steps = List(Nested(Step), required=True)


class JobPage(Page):
    items = List(Nested(Job), required=True)


class WebhookIn(Schema):
    url = String(required=True, validate=Length(8, 2048), metadata={
        "description": "https://... (http only to this machine, for development)."})


class Webhook(Schema):
    id = String(required=True)
    sp = String(required=True)
    url = String(required=True)
    created_at = DateTime(required=True)


class NewWebhook(Webhook):
    secret = String(required=True, metadata={
        "description": "The signing secret (whsec_...), shown this once: keep it to verify `webhook-signature`."})


class WebhookPage(Page):
    items = List(Nested(Webhook), required=True)


class TopUpIn(Schema):
    amount = Integer(required=True, validate=Range(1, 0xFFFFFFFF), metadata={"description": "Minor units."})


class TopUp(Schema):
    id = String(required=True)
    service_id = String(required=True)
    amount = Integer(required=True)
    state = String(required=True)
    balance_before = Integer(required=True, allow_none=True)
    balance_after = Integer(required=True, allow_none=True)


class TopUpOrdered(Schema):
    top_up = Nested(TopUp, required=True)
    operation = Nested(Operation, required=True)


class RelaySessionIn(Schema):
    operation_id = String(load_default=None, validate=ID, metadata={
        "description": "The device's operation to run over the session (else only what waits for the device)."})


class RelaySession(Schema):
    id = String(required=True, metadata={"description": "The session id: a bearer secret, shown this once."})
    url = String(required=True, metadata={"description": "The exchange endpoint (docs/relay.md): POST with the "
                                                         "device's API key as `Authorization: Bearer`."})
    se_id = String(required=True)
    operation_id = String(required=True, allow_none=True)
    expires_at = DateTime(required=True)
