"""Request and response schemas of the key-service API for TSM components (docs/api.md, "Key service"). Binary
values are hex strings; a value that is not hex, or not of a length GlobalPlatform allows, fails its schema (422)."""

from __future__ import annotations

from typing import Any, Final

from apiflask import Schema
from apiflask.fields import DateTime, Integer, List, String
from apiflask.validators import Length, OneOf, Range

from keyservice.channels import DivMethod
from keyservice.inventory import KeyUsage
from tsm_core.apikeys.service import COMPONENT_PURPOSES
from web.api.schemas import ID, whole

PURPOSES: Final = tuple(sorted(COMPONENT_PURPOSES))
APDU_MAX: Final = 261
"""A short command APDU: header, Lc, 255 bytes of data, Le (ISO/IEC 7816-4 §5.1)."""
RESPONSE_MAX: Final = 258
LABEL: Final = whole(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def hex_field(low: int, high: int, description: str = "", **kwargs: Any) -> String:
    """`low` to `high` bytes as hex."""
    return String(validate=whole(rf"([0-9A-Fa-f]{{2}}){{{low},{high}}}"),
                  metadata={"description": f"{description} Hex, {low} to {high} bytes.".strip()}, **kwargs)


class ChannelOpenIn(Schema):
    se_id = String(required=True, validate=ID)
    purpose = String(required=True, validate=OneOf(PURPOSES))
    sd_aid = hex_field(5, 16, load_default=None)
    kvn = Integer(load_default=None, validate=Range(0, 255), metadata={"description": "Default: the active set."})
    security_level = Integer(load_default=0x01, validate=OneOf((0x01, 0x03, 0x11, 0x13, 0x31, 0x33)),
                             metadata={"description": "C-MAC 01, C-DEC 02, R-MAC 10, R-ENC 20 (GPCS 2.3.1 "
                                                      "Table 11-62, Amd D Table 7-4)."})
    host_challenge = hex_field(8, 8, load_default=None)
    card_response = hex_field(28, 48, "The card's INITIALIZE UPDATE answer without its status word; with it, the "
                                      "channel is authenticated at once (host_challenge is then required).",
                              load_default=None)


class AuthenticateIn(Schema):
    card_response = hex_field(28, 48, "The card's INITIALIZE UPDATE answer without its status word.", required=True)


class Channel(Schema):
    id = String(required=True, metadata={"description": "The channel handle (bound to this component)."})
    se_id = String(required=True)
    sd_aid = String(required=True)
    kvn = Integer(required=True)
    purpose = String(required=True)
    state = String(required=True, validate=OneOf(("initializing", "open")))
    scp = String(required=True)
    security_level = Integer(required=True)
    expires_at = DateTime(required=True)
    initialize_update = String(required=True, allow_none=True)
    external_authenticate = String(required=True, allow_none=True)


class CommandIn(Schema):
    command = hex_field(4, APDU_MAX, required=True)


class CommandOut(Schema):
    command = String(required=True)


class ResponseIn(Schema):
    response = hex_field(2, RESPONSE_MAX, required=True)


class ResponseOut(Schema):
    response = String(required=True)


class PutKeyIn(Schema):
    keys = List(String(validate=LABEL), required=True, validate=Length(1, 3),
                metadata={"description": "A KMC (with diversification) or one/three exportable keys."})
    diversification = String(load_default=None, validate=OneOf(tuple(m.value for m in DivMethod)))
    old_kvn = Integer(load_default=0, validate=Range(0, 255))
    new_kvn = Integer(required=True, validate=Range(1, 255))


class PutKeyOut(Schema):
    command = String(required=True, metadata={"description": "The PUT KEY, wrapped: send it as is."})
    new_kvn = Integer(required=True)
    kcvs = List(String(), required=True, metadata={"description": "What the card's answer must carry."})


class DgiIn(Schema):
    dgi = hex_field(2, 2, required=True)
    value = hex_field(1, 239, required=True)


class DgiOut(Schema):
    dgi = String(required=True)
    data = String(required=True, metadata={"description": "The DGI value encrypted under the channel's DEK."})


class KcvQuery(Schema):
    purpose = String(required=True, validate=OneOf(PURPOSES))
    method = String(load_default=None, validate=OneOf(("gp", "aes_zero", "aes_cmac", "hmac")))
    length = Integer(load_default=3, validate=Range(2, 5))


class KcvOut(Schema):
    label = String(required=True)
    kcv = String(required=True)


class KeyBlockIn(Schema):
    kbpk = String(required=True, validate=LABEL)
    key_block = String(required=True, validate=whole(r"[0-9A-Za-z]{16,4096}"))
    label = String(required=True, validate=LABEL)
    owner = String(required=True, validate=Length(1, 64))
    usage = String(load_default=None, validate=OneOf(tuple(u.value for u in KeyUsage)),
                   metadata={"description": "The inventory usage, when the block's TR-31 usage has none."})
    kvn = Integer(load_default=None, validate=Range(0, 255))
    key_id = Integer(load_default=None, validate=Range(0, 255))
    expected_kcv = hex_field(2, 5, required=True)


class KeyOut(Schema):
    label = String(required=True)
    usage = String(required=True)
    state = String(required=True)
    kcv = String(required=True)


class KeyBlockExportIn(Schema):
    label = String(required=True, validate=LABEL)
    kbpk = String(required=True, validate=LABEL)
    usage = String(required=True, validate=whole(r"[A-Z0-9]{2}"))
    mode = String(load_default="N", validate=whole(r"[A-Z0-9]"))
    key_version = String(load_default="00", validate=whole(r"[A-Za-z0-9]{2}"))
    exportability = String(load_default="N", validate=whole(r"[A-Z0-9]"))


class KeyBlockOut(Schema):
    key_block = String(required=True)
