"""GET STATUS parsing (GPCS 2.3.1 §11.4.3) against published responses.

Sources:
- tests/vectors/secure_channel_scp02.json and secure_channel_scp03.json: GET STATUS P1 '80' responses from
  miketlk/omfgp tests/omfgp/scp_test.py (the vector files cite them).
- martinpaljak/GlobalPlatformPro library/src/test/java/pro/javacard/gp/TestParseTags.java (testParseISD,
  testParsePartialISD, testPrivileges).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from globalplatform.errors import StatusParseError
from globalplatform.sw import Sw
from tsm_core.gp import getstatus
from tsm_core.gp.getstatus import (
    ApplicationLifeCycle,
    CardLifeCycle,
    LoadFileLifeCycle,
    Privilege,
    SecurityDomainLifeCycle,
    StatusSubset,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
OMFGP_PRIVILEGES = (
    Privilege.SECURITY_DOMAIN
    | Privilege.CARD_LOCK
    | Privilege.CARD_TERMINATE
    | Privilege.CARD_RESET
    | Privilege.CVM_MANAGEMENT
    | Privilege.TRUSTED_PATH
    | Privilege.AUTHORIZED_MANAGEMENT
    | Privilege.TOKEN_VERIFICATION
    | Privilege.GLOBAL_DELETE
    | Privilege.GLOBAL_LOCK
    | Privilege.GLOBAL_REGISTRY
    | Privilege.FINAL_APPLICATION
    | Privilege.RECEIPT_GENERATION
)


def _omfgp_responses():
    for name, isd, state in (
        ("secure_channel_scp02.json", "A000000003000000", CardLifeCycle.OP_READY),
        ("secure_channel_scp03.json", "A000000151000000", CardLifeCycle.INITIALIZED),
    ):
        document = json.loads((VECTORS / name).read_text())
        for vector in document["vectors"]:
            for command in vector["commands"]:
                if command["plain"].startswith("80F28002") and command["response_plain"].endswith("9000"):
                    yield pytest.param(command["response_plain"], isd, state, id=vector["id"])


@pytest.mark.parametrize(("response", "isd", "state"), list(_omfgp_responses()))
def test_omfgp_isd_tlv(response, isd, state):
    raw = bytes.fromhex(response)
    assert int.from_bytes(raw[-2:], "big") == Sw.SUCCESS
    (entry,) = getstatus.parse_tlv(StatusSubset.ISD, raw[:-2])
    assert entry.aid == bytes.fromhex(isd)
    assert entry.state is state
    assert entry.privileges == OMFGP_PRIVILEGES
    assert entry.is_security_domain
    assert entry.elf_aid == bytes.fromhex("A0000000620001")
    assert entry.elf_version == bytes.fromhex("0100")
    assert entry.associated_sd_aid == bytes.fromhex(isd)


def test_gppro_parse_isd():
    raw = bytes.fromhex("E3144F07A00000015100009F700107C50180EA028000")
    (entry,) = getstatus.parse_tlv(StatusSubset.ISD, raw)
    assert entry.aid == bytes.fromhex("A0000001510000")
    assert entry.privileges == Privilege.SECURITY_DOMAIN
    assert entry.state is CardLifeCycle.INITIALIZED


def test_gppro_parse_partial_isd_with_repeated_implicit_selection():
    raw = bytes.fromhex(
        "E3464F08A0000000030000009F700101C5039EFE80CF0140CF0141CF0142CF0143CF0180CF0181CF0182CF0183"
        "C40BD276000005AAFFCAFE0001CE020001CC08A000000003000000"
    )
    (entry,) = getstatus.parse_tlv(StatusSubset.ISD, raw)
    assert entry.state is CardLifeCycle.OP_READY
    assert entry.implicit_selection == tuple(bytes((b,)) for b in (0x40, 0x41, 0x42, 0x43, 0x80, 0x81, 0x82, 0x83))
    assert entry.elf_aid == bytes.fromhex("D276000005AAFFCAFE0001")


@pytest.mark.parametrize(
    ("hex_text", "expected", "count"),
    [
        ("80C000", Privilege.SECURITY_DOMAIN | Privilege.TRUSTED_PATH | Privilege.AUTHORIZED_MANAGEMENT, 3),
        ("9EFE80", OMFGP_PRIVILEGES, 13),
    ],
)
def test_gppro_privileges(hex_text, expected, count):
    privileges = Privilege.decode(bytes.fromhex(hex_text))
    assert privileges == expected
    assert len(list(privileges)) == count
    assert privileges.encode() == bytes.fromhex(hex_text)


def test_privileges_short_form():
    assert Privilege.decode(b"\x80") == Privilege.SECURITY_DOMAIN
    assert Privilege.SECURITY_DOMAIN.encode(short=True) == b"\x80"
    with pytest.raises(StatusParseError):
        (Privilege.SECURITY_DOMAIN | Privilege.GLOBAL_DELETE).encode(short=True)
    with pytest.raises(StatusParseError):
        Privilege.decode(b"\x00\x00\x01")  # RFU bit
    with pytest.raises(StatusParseError):
        Privilege.decode(b"\x00\x00")


# Legacy format, constructed from GPCS 2.3.1 Table 11-37 (entry) and Table 11-38 (with modules).
def test_legacy_applications():
    raw = bytes.fromhex(
        "07A0000001510001 07 00" + "08A000000151000001 0F 80" + "07A0000001510002 83 00" + "07A0000001510003 3F 00"
    )
    entries = getstatus.parse_legacy(StatusSubset.APPLICATIONS, raw)
    assert [e.aid.hex().upper() for e in entries] == [
        "A0000001510001",
        "A000000151000001",
        "A0000001510002",
        "A0000001510003",
    ]
    assert entries[0].state is ApplicationLifeCycle.SELECTABLE
    assert entries[1].state is SecurityDomainLifeCycle.PERSONALIZED
    assert entries[2].state is ApplicationLifeCycle.LOCKED
    assert entries[3].state is ApplicationLifeCycle.SELECTABLE
    assert entries[3].application_specific_state == 0x07


def test_legacy_load_files_and_modules():
    raw = bytes.fromhex("07A0000000620001 01 00 02 08A000000062000101 08A000000062000102" + "05A000000063 01 00 00")
    first, second = getstatus.parse_legacy(StatusSubset.LOAD_FILES_AND_MODULES, raw)
    assert first.state is LoadFileLifeCycle.LOADED
    assert first.modules == (bytes.fromhex("A000000062000101"), bytes.fromhex("A000000062000102"))
    assert second.modules == ()


@pytest.mark.parametrize(
    ("subset", "hex_text"),
    [
        (StatusSubset.APPLICATIONS, "07A0000001510001 07"),  # missing privileges byte
        (StatusSubset.LOAD_FILES_AND_MODULES, "07A0000000620001 01 00"),  # missing module count
        (StatusSubset.LOAD_FILES_AND_MODULES, "07A0000000620001 01 00 01 08A0000000"),  # module truncated
    ],
)
def test_legacy_truncated(subset, hex_text):
    with pytest.raises(StatusParseError):
        getstatus.parse_legacy(subset, bytes.fromhex(hex_text.replace(" ", "")))


@pytest.mark.parametrize(
    "hex_text",
    [
        "E3039F7001",  # truncated TLV
        "E3049F700107",  # no AID
        "E30C4F07A00000015100009F7001",  # 9F70 declares one value byte it does not carry
        "E30C4F07A00000015100009F7000",  # 9F70 with an empty value
        "E3104F07A00000015100004F07A0000001510000",  # two AIDs, no life cycle
        "6F054F03A00000",  # not an E3 template
    ],
)
def test_tlv_malformed(hex_text):
    with pytest.raises(StatusParseError):
        getstatus.parse_tlv(StatusSubset.APPLICATIONS, bytes.fromhex(hex_text))


def test_invalid_life_cycle_for_isd():
    (entry,) = getstatus.parse_tlv(StatusSubset.ISD, bytes.fromhex("E30E4F05A0000001519F700103C50180"))
    with pytest.raises(StatusParseError):
        _ = entry.state
