"""The in-process transport against the test card: ATR, transmit, GET RESPONSE and 6CXX handling."""

from __future__ import annotations

import pytest

from tests.tsm_core.cards import ATR, CHAINED, ISD_STATUS, MiniCard
from tsm_core.errors import TsmCoreError
from tsm_core.transport.errors import NotConnected, TransmitFailed
from tsm_core.transport.local import LocalTransport


def test_context_manager_connects_and_transmits():
    card = MiniCard()
    with LocalTransport(card) as transport:
        assert transport.atr == ATR
        assert transport.transmit(bytes.fromhex("80F28002024F00")) == ISD_STATUS + b"\x90\x00"
    assert card.resets == 1
    with pytest.raises(NotConnected):
        transport.transmit(b"\x00\xa4\x04\x00")


def test_get_response_chaining():
    card = MiniCard()
    with LocalTransport(card) as transport:
        assert transport.transmit(bytes.fromhex("00020000")) == CHAINED + b"\x90\x00"
    assert card.apdus == [bytes.fromhex("00020000"), bytes.fromhex("00C0000010")]


def test_wrong_le_is_resent():
    card = MiniCard()
    with LocalTransport(card) as transport:
        assert transport.transmit(bytes.fromhex("0003000000")) == bytes.fromhex("CAFEBABE9000")
    assert card.apdus == [bytes.fromhex("0003000000"), bytes.fromhex("0003000004")]


class _BrokenCard(MiniCard):
    def transmit(self, apdu: bytes) -> bytes:
        return b"\x90"


def test_malformed_response_is_typed():
    with LocalTransport(_BrokenCard()) as transport, pytest.raises(TransmitFailed) as caught:
        transport.transmit(b"\x00\xa4\x04\x00")
    assert isinstance(caught.value, TsmCoreError)
    assert caught.value.code == "transmit_failed"
