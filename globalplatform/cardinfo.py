"""What a card says about itself before any authentication: its card recognition data (GET DATA '66') and
the FCI a Security Domain returns to SELECT.

- Card Data '66' wraps the Card Recognition Data '73' (GPCS 2.3.1 Annex H, Table H-1): the OID
  {globalPlatform 1}, then '60' card management type and version {globalPlatform 2 v v v}, '63' card
  identification scheme {globalPlatform 3}, one '64' per Secure Channel Protocol {globalPlatform 4 scp i},
  '65' card configuration details, '66' card / chip details, '67' / '68' ISD trust point and certificate
  information. Each of '60', '63', '64' holds an OID ('06'); '65' to '68' are kept as the card sent them (cards
  put more than one OID, or no OID at all, in '65' and '66').
- The FCI of a Security Domain (GPCS 2.3.1 §11.9.3.1): '6F' with the SD's AID '84' and proprietary data 'A5':
  Security Domain Management Data '73' (Table H-2, the layout of Table H-1), application production life cycle
  data '9F6E', maximum length of a command data field '9F65'.

The SCP OID's last two bytes are read as the SCP identifier and "i" themselves, not as OID arcs: that is what
cards send (a published dump has '80 00' for SCP80 i=00, which is not a minimal base-128 arc) and what
GlobalPlatformPro reads.

Why here: these are GlobalPlatform data objects without product logic (pure functions over bytes), read by the
TSM core before it opens a secure channel (SCP, "i" and the ISD's AID for the key service's `ChannelSpec`) and
general enough for any reader of a card, so they belong beside `initupdate` in the GP vocabulary rather than in
`tsm_core.gp` (the TSM's command builders). The key information template is in `globalplatform.keyinfo`.
`CARD_DATA_EXAMPLES` and `FCI_EXAMPLES` are published card dumps; one generic test round-trips each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from globalplatform import tlv
from globalplatform.errors import CardDataError, GpError

GP_OID: Final = bytes.fromhex("2A864886FC6B")
"""{iso(1) member-body(2) us(840) globalPlatform(114283)} (GPCS 2.3.1 Table H-1)."""


@unique
class CardDataTag(IntEnum):
    """Tags inside the Card Data (GPCS 2.3.1 Table H-1)."""

    RECOGNITION_DATA = 0x73
    OID = 0x06
    CARD_MANAGEMENT = 0x60
    """Card management type and version: {globalPlatform 2 v v v}."""
    IDENTIFICATION_SCHEME = 0x63
    """Card identification scheme: {globalPlatform 3}."""
    SECURE_CHANNEL = 0x64
    """Secure Channel Protocol of the ISD and its implementation options: {globalPlatform 4 scp i}."""
    CONFIGURATION = 0x65
    CHIP_DETAILS = 0x66
    """Card / chip details: inside '73', the same tag as the Card Data around it."""
    TRUST_POINT = 0x67
    ISD_CERTIFICATE = 0x68


@unique
class GpArc(IntEnum):
    """The arc under {globalPlatform} that each OID of Table H-1 starts with."""

    RECOGNITION_DATA = 1
    CARD_MANAGEMENT = 2
    IDENTIFICATION_SCHEME = 3
    SECURE_CHANNEL = 4


@unique
class FciTag(IntEnum):
    """Tags of the FCI returned by SELECT of a Security Domain (GPCS 2.3.1 §11.9.3.1)."""

    FCI = 0x6F
    AID = 0x84
    PROPRIETARY = 0xA5
    MANAGEMENT_DATA = 0x73
    PRODUCTION_LIFE_CYCLE = 0x9F6E
    MAX_COMMAND_LENGTH = 0x9F65


CARD_DATA_TAG: Final = 0x66
"""The Card Data object GET DATA '66' returns (GPCS 2.3.1 §11.3.3.1, Table H-1)."""
_RECOGNITION_OID: Final = GP_OID + bytes([GpArc.RECOGNITION_DATA])
_SCP_PREFIX: Final = GP_OID + bytes([GpArc.SECURE_CHANNEL])
_VERSION_PREFIX: Final = GP_OID + bytes([GpArc.CARD_MANAGEMENT])


@dataclass(frozen=True)
class ScpOption:
    """One Secure Channel Protocol the card offers and its "i" (None when the card gives only the SCP)."""

    scp: int
    i: int | None = None

    def __str__(self) -> str:
        return f"SCP{self.scp:02X}" + ("" if self.i is None else f" i={self.i:02X}")


@dataclass(frozen=True)
class CardRecognitionData:
    """Card Recognition Data '73' (Table H-1), or a Security Domain's management data (Table H-2)."""

    gp_version: tuple[int, ...] | None = None
    """The card management version of '60' ((2, 1, 1) for GP 2.1.1); None when absent."""
    identification_scheme: bytes | None = None
    """The OID of '63' (content octets)."""
    secure_channels: tuple[ScpOption, ...] = ()
    """One per '64', in the card's order."""
    configuration: bytes | None = None
    """Value of '65', as sent."""
    chip_details: bytes | None = None
    """Value of '66', as sent."""
    trust_point: bytes | None = None
    """Value of '67', as sent."""
    isd_certificate: bytes | None = None
    """Value of '68', as sent."""

    def channel(self, *scps: int) -> ScpOption | None:
        """The first secure channel whose SCP identifier is one of `scps` (e.g. 02, 03), or None."""
        return next((option for option in self.secure_channels if option.scp in scps), None)


@dataclass(frozen=True)
class SecurityDomainFci:
    """The FCI of a selected Security Domain (GPCS 2.3.1 §11.9.3.1)."""

    aid: bytes
    management_data: CardRecognitionData | None = None
    production_life_cycle: bytes | None = None
    max_command_length: bytes | None = None


# ---- OIDs ------------------------------------------------------------------------------------------------


def _arcs(encoded: bytes) -> tuple[int, ...]:
    """Base-128 sub-identifiers (X.690 §8.19.2)."""
    arcs: list[int] = []
    value = 0
    for byte in encoded:
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if encoded and encoded[-1] & 0x80:
        raise CardDataError(f"OID sub-identifiers {encoded.hex().upper()} end inside a sub-identifier")
    return tuple(arcs)


def _arc_bytes(arcs: tuple[int, ...]) -> bytes:
    out = bytearray()
    for arc in arcs:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(arc & 0x7F | 0x80)
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def _single_oid(tag: int, value: bytes) -> bytes:
    """The content of the one OID ('06') that tag `tag` holds."""
    items = tlv.decode_all(value)
    if len(items) != 1 or items[0].tag != CardDataTag.OID:
        raise CardDataError(f"tag {tag:02X} must hold one OID (06), not {value.hex().upper()} (GPCS 2.3.1 Table H-1)")
    return items[0].value


def _under(prefix: bytes, oid: bytes, what: str) -> bytes:
    if not oid.startswith(prefix):
        raise CardDataError(f"{what}: OID {oid.hex().upper()} is not under {prefix.hex().upper()} "
                            "(GPCS 2.3.1 Table H-1)")
    return oid[len(prefix):]


def _scp(oid: bytes) -> ScpOption:
    rest = _under(_SCP_PREFIX, oid, "secure channel protocol (64)")
    if len(rest) not in (1, 2):
        raise CardDataError(f"secure channel protocol (64): {{globalPlatform 4 scp i}} ends in {len(rest)} bytes, "
                            "not 1 or 2")
    return ScpOption(rest[0], rest[1] if len(rest) == 2 else None)


# ---- card recognition data ------------------------------------------------------------------------------


def parse_recognition_data(value: bytes) -> CardRecognitionData:
    """The content of a '73' (Table H-1 / H-2)."""
    items = tlv.decode_all(value)
    if not items or items[0].tag != CardDataTag.OID or items[0].value != _RECOGNITION_OID:
        raise CardDataError("card recognition data starts with the OID {globalPlatform 1} (GPCS 2.3.1 Table H-1)")
    version: tuple[int, ...] | None = None
    scheme: bytes | None = None
    channels: list[ScpOption] = []
    raw: dict[int, bytes] = {}
    for item in items[1:]:
        if item.tag == CardDataTag.CARD_MANAGEMENT:
            version = _arcs(_under(_VERSION_PREFIX, _single_oid(item.tag, item.value), "card management (60)"))
        elif item.tag == CardDataTag.IDENTIFICATION_SCHEME:
            scheme = _single_oid(item.tag, item.value)
        elif item.tag == CardDataTag.SECURE_CHANNEL:
            channels.append(_scp(_single_oid(item.tag, item.value)))
        elif item.tag in (CardDataTag.CONFIGURATION, CardDataTag.CHIP_DETAILS, CardDataTag.TRUST_POINT,
                          CardDataTag.ISD_CERTIFICATE) and item.tag not in raw:
            raw[item.tag] = item.value
        else:
            raise CardDataError(f"tag {tlv.tag_bytes(item.tag).hex().upper()} is not one of card recognition data "
                                "(GPCS 2.3.1 Table H-1), or is repeated")
    return CardRecognitionData(version, scheme, tuple(channels), raw.get(CardDataTag.CONFIGURATION),
                               raw.get(CardDataTag.CHIP_DETAILS), raw.get(CardDataTag.TRUST_POINT),
                               raw.get(CardDataTag.ISD_CERTIFICATE))


def parse_card_data(data: bytes) -> CardRecognitionData:
    """The GET DATA '66' response (without SW): Card Data '66' holding Card Recognition Data '73'."""
    outer = _one(data, CARD_DATA_TAG, "card data")
    return parse_recognition_data(_one(outer, CardDataTag.RECOGNITION_DATA, "card recognition data"))


def encode_recognition_data(data: CardRecognitionData) -> bytes:
    """The '73' TLV, objects in Table H-1 order."""
    body = tlv.encode(CardDataTag.OID, _RECOGNITION_OID)
    if data.gp_version is not None:
        oid = tlv.encode(CardDataTag.OID, _VERSION_PREFIX + _arc_bytes(data.gp_version))
        body += tlv.encode(CardDataTag.CARD_MANAGEMENT, oid)
    if data.identification_scheme is not None:
        body += tlv.encode(CardDataTag.IDENTIFICATION_SCHEME, tlv.encode(CardDataTag.OID, data.identification_scheme))
    for option in data.secure_channels:
        arcs = bytes([option.scp]) + (b"" if option.i is None else bytes([option.i]))
        body += tlv.encode(CardDataTag.SECURE_CHANNEL, tlv.encode(CardDataTag.OID, _SCP_PREFIX + arcs))
    for tag, value in ((CardDataTag.CONFIGURATION, data.configuration), (CardDataTag.CHIP_DETAILS, data.chip_details),
                       (CardDataTag.TRUST_POINT, data.trust_point), (CardDataTag.ISD_CERTIFICATE,
                                                                      data.isd_certificate)):
        if value is not None:
            body += tlv.encode(tag, value)
    return tlv.encode(CardDataTag.RECOGNITION_DATA, body)


def encode_card_data(data: CardRecognitionData) -> bytes:
    """The GET DATA '66' response data."""
    return tlv.encode(CARD_DATA_TAG, encode_recognition_data(data))


def _one(data: bytes, tag: int, what: str) -> bytes:
    """The value of the single TLV `data` must be, with tag `tag`."""
    try:
        item, end = tlv.decode_one(data)
    except GpError as exc:
        raise CardDataError(f"{what}: {exc}") from None
    if item.tag != tag or end != len(data):
        raise CardDataError(f"{what} is one TLV with tag {tlv.tag_bytes(tag).hex().upper()}, not "
                            f"{data[:4].hex().upper()}...")
    return item.value


# ---- FCI of a Security Domain ---------------------------------------------------------------------------


def parse_fci(data: bytes) -> SecurityDomainFci:
    """The SELECT response data of a Security Domain (GPCS 2.3.1 §11.9.3.1)."""
    fields = {item.tag: item.value for item in tlv.decode_all(_one(data, FciTag.FCI, "FCI"))}
    aid = fields.get(FciTag.AID)
    if aid is None:
        raise CardDataError("the FCI of a Security Domain names its AID in tag 84 (GPCS 2.3.1 §11.9.3.1)")
    proprietary = {item.tag: item.value for item in tlv.decode_all(fields.get(FciTag.PROPRIETARY, b""))}
    management = proprietary.get(FciTag.MANAGEMENT_DATA)
    return SecurityDomainFci(aid, None if management is None else parse_recognition_data(management),
                             proprietary.get(FciTag.PRODUCTION_LIFE_CYCLE), proprietary.get(FciTag.MAX_COMMAND_LENGTH))


def encode_fci(fci: SecurityDomainFci) -> bytes:
    """The FCI: 84, then A5 with 73, 9F6E, 9F65 (those present)."""
    proprietary = b"" if fci.management_data is None else encode_recognition_data(fci.management_data)
    for tag, value in ((FciTag.PRODUCTION_LIFE_CYCLE, fci.production_life_cycle),
                       (FciTag.MAX_COMMAND_LENGTH, fci.max_command_length)):
        if value is not None:
            proprietary += tlv.encode(tag, value)
    return tlv.encode(FciTag.FCI, tlv.encode(FciTag.AID, fci.aid) + tlv.encode(FciTag.PROPRIETARY, proprietary))


# ---- published examples (hex, decoded, source) ----------------------------------------------------------

_GPPRO_TESTS = "martinpaljak/GlobalPlatformPro library/src/test/java/pro/javacard/gp/test/TestParseTags.java @0122989"
_SCHEME = GP_OID + bytes([GpArc.IDENTIFICATION_SCHEME])

CARD_DATA_EXAMPLES: Final[tuple[tuple[str, CardRecognitionData, str], ...]] = (
    (
        "664C 734A 06072A864886FC6B01 600C060A2A864886FC6B02020101 630906072A864886FC6B03"
        " 640B06092A864886FC6B040215 650B06092B8510864864020103 660C060A2B060104012A026E0102",
        CardRecognitionData((2, 1, 1), _SCHEME, (ScpOption(0x02, 0x15),), tlv.h("06092B8510864864020103"),
                            tlv.h("060A2B060104012A026E0102")),
        f"{_GPPRO_TESTS} testOther (GP 2.1.1, SCP02 i=15); the same bytes from a card in ctskinner.blogspot.com "
        "2011/10 'GlobalPlatform Card Key Id & Versions'",
    ),
    (
        "6657 7355 06072A864886FC6B01 600B06092A864886FC6B020202 630906072A864886FC6B03 640B06092A864886FC6B040370"
        " 640B06092A864886FC6B048000 650A06082A864886FC6B0504 660C060A2B060104012A026E0103",
        CardRecognitionData((2, 2), _SCHEME, (ScpOption(0x03, 0x70), ScpOption(0x80, 0x00)),
                            tlv.h("06082A864886FC6B0504"), tlv.h("060A2B060104012A026E0103")),
        f"{_GPPRO_TESTS} testOther (GP 2.2, SCP03 i=70 and SCP80 i=00)",
    ),
    (
        "6631 732F 06072A864886FC6B01 600C060A2A864886FC6B02020201 630906072A864886FC6B03 640B06092A864886FC6B040370",
        CardRecognitionData((2, 2, 1), _SCHEME, (ScpOption(0x03, 0x70),)),
        "martinpaljak/GlobalPlatformPro issue #114 (Oberthur COSMO 8.1, GET DATA 66 in `gp -i` output)",
    ),
    (
        "6631 732F 06072A864886FC6B01 600C060A2A864886FC6B02020101 630906072A864886FC6B03 640B06092A864886FC6B040215",
        CardRecognitionData((2, 1, 1), _SCHEME, (ScpOption(0x02, 0x15),)),
        "osmocom/pysim pySim/global_platform/__init__.py @078ac2b, card data sample comment (GET DATA 80CA006600)",
    ),
)
"""GET DATA '66' responses of real cards, as published, and what they say."""

FCI_EXAMPLES: Final[tuple[tuple[str, SecurityDomainFci, str], ...]] = (
    (
        "6F40 8407A0000001510000 A535 732F06072A864886FC6B01600C060A2A864886FC6B02020201630906072A864886FC6B03"
        "640B06092A864886FC6B040370 9F6501FF",
        SecurityDomainFci(tlv.h("A0000001510000"), CardRecognitionData((2, 2, 1), _SCHEME, (ScpOption(0x03, 0x70),)),
                          max_command_length=b"\xff"),
        "martinpaljak/GlobalPlatformPro issue #112 (SELECT of the ISD, a 7-byte ISD AID, SCP03 i=70)",
    ),
    (
        "6F10 8408A000000151000000 A5049F6501FF",
        SecurityDomainFci(tlv.h("A000000151000000"), max_command_length=b"\xff"),
        "martinpaljak/GlobalPlatformPro issue #221 (JCOP 4: no Security Domain Management Data in the FCI)",
    ),
    (
        "6F8189 8408A000000151000000 A57D 736E06072A864886FC6B01600B06092A864886FC6B020202630906072A864886FC6B03"
        "640B06092A864886FC6B048000640B06092A864886FC6B040255640B06092A864886FC6B048107650AAACAADDEDFEDACADEEEE"
        "6618060A2B060104012A026E0103060A5354333349314D320202 9F6E06007781030202 9F6501FF",
        SecurityDomainFci(
            tlv.h("A000000151000000"),
            CardRecognitionData((2, 2), _SCHEME, (ScpOption(0x80, 0x00), ScpOption(0x02, 0x55), ScpOption(0x81, 0x07)),
                                tlv.h("AACAADDEDFEDACADEEEE"),
                                tlv.h("060A2B060104012A026E0103060A5354333349314D320202")),
            tlv.h("007781030202"), b"\xff"),
        "martinpaljak/GlobalPlatformPro issue #152 (an eUICC: SCP80, SCP02 i=55 and SCP81; '65' holds no OID)",
    ),
)
"""SELECT responses of real ISDs, as published, and what they say."""
