"""Malformed and unknown APDUs get the status word a real card gives; transmit never raises."""

from __future__ import annotations

import pytest

from tests.cardsim import gp


@pytest.mark.parametrize(
    ("capdu", "sw"),
    [
        ("", "6700"),
        ("80", "6700"),
        ("80CA00", "6700"),
        ("80CA9F7F0300", "6700"),  # Lc 3, one byte of data
        ("80CA9F7F00000000", "6700"),  # extended length
        ("80CC000000", "6d00"),
        ("00E6020000", "6e00"),
        ("81CA9F7F00", "6881"),
        ("00A40000020102", "6a86"),
        ("00A4040005A000000999", "6a82"),
        ("80CA00FE00", "6a88"),
        ("80F0800F", "6982"),
    ],
)
def test_status_words(card, capdu, sw):
    assert card.transmit(bytes.fromhex(capdu)).hex() == sw


def test_select_isd_by_empty_aid_and_by_name(card):
    by_empty = card.transmit(bytes.fromhex("00A4040000"))
    by_name = card.transmit(gp.select(card.registry.isd_aid))
    assert by_empty == by_name
    assert by_name[:2] == b"\x6f\x43" or by_name[0] == 0x6F
    assert by_name[-2:] == b"\x90\x00"


def test_get_data_objects(card):
    cplc = card.transmit(bytes.fromhex("80CA9F7F00"))
    assert cplc[:3] == b"\x9f\x7f\x2a" and len(cplc) == 3 + 42 + 2
    cin = card.transmit(bytes.fromhex("00CA004500"))
    assert cin[:2] == b"\x45\x0a" and cin[2:12] == card.identity.kdd
    assert card.transmit(bytes.fromhex("80CA004200")).hex() == "6a88"  # no IIN on a fresh card
    card_data = card.transmit(bytes.fromhex("80CA006600"))
    assert card_data[:1] == b"\x66" and bytes.fromhex("2A864886FC6B040370") in card_data
    keys = card.transmit(bytes.fromhex("80CA00E000"))
    assert keys.hex().startswith("e012c00401ff8810c00402ff8810c00403ff8810")
    resources = card.transmit(bytes.fromhex("80CAFF2100"))
    assert resources.hex().startswith("ff21") and resources[-2:] == b"\x90\x00"
    assert card.transmit(bytes.fromhex("80CA00C100")).hex() == "c103000000" + "9000"
