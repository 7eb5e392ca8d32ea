"""Card Recognition Data and Security Domain Management Data (GPCS 2.3.1 Appendix H, Tables H-1/H-2),
and the FCI returned by SELECT of a Security Domain (GPCS 2.3.1 11.9.3.1)."""

from __future__ import annotations

from typing import Final

from cardsim.tlv import tlv

GP_OID: Final = bytes.fromhex("2A864886FC6B")
"""{iso(1) member-body(2) us(840) globalPlatform(114283)}."""
GP_VERSION: Final = bytes([2, 3, 1])
MAX_BLOCK_LENGTH: Final = 0xFF


def _oid(*arcs: int) -> bytes:
    return tlv(0x06, GP_OID + bytes(arcs))


def management_data(scp: int, i: int) -> bytes:
    """Tag 73: GP RID, GP version 2.3.1, card identification scheme, SCP and its i parameter (Table H-1)."""
    body = _oid(1)
    body += tlv(0x60, _oid(2, *GP_VERSION))
    body += tlv(0x63, _oid(3))
    body += tlv(0x64, _oid(4, scp, i))
    return tlv(0x73, body)


def card_data(scp: int, i: int) -> bytes:
    """GET DATA 66: Card Data wrapping the Card Recognition Data (GPCS 2.3.1 H.2)."""
    return tlv(0x66, management_data(scp, i))


def sd_fci(aid: bytes, scp: int, i: int) -> bytes:
    """FCI template 6F with 84 (AID) and A5 (proprietary data: 73, 9F65 max block length)."""
    proprietary = management_data(scp, i) + tlv(0x9F65, bytes([MAX_BLOCK_LENGTH]))
    return tlv(0x6F, tlv(0x84, aid) + tlv(0xA5, proprietary))
