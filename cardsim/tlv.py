"""BER-TLV (ISO/IEC 7816-4 annex D; GPCS 2.3.1 11.1.5) and length-value helpers, as pure functions."""

from __future__ import annotations

from collections.abc import Iterator

from cardsim.sw import SW, ApduError


def encode_length(n: int) -> bytes:
    """BER length: 1 byte below 128, else 81 xx / 82 xx xx."""
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    raise ValueError("TLV value too long")


def tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV object; `tag` up to 2 bytes."""
    tag_bytes = tag.to_bytes(2, "big") if tag > 0xFF else bytes([tag])
    return tag_bytes + encode_length(len(value)) + value


def read_length(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a BER length at `pos`; returns (length, position after it). 6A80 when truncated."""
    if pos >= len(data):
        raise ApduError(SW.WRONG_DATA, "missing length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count not in (1, 2) or pos + 1 + count > len(data):
        raise ApduError(SW.WRONG_DATA, "bad BER length")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def iter_tlv_at(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (offset of the tag, tag, value) for a sequence of BER-TLV objects; 6A80 when malformed."""
    pos = 0
    while pos < len(data):
        start = pos
        tag = data[pos]
        pos += 1
        if tag & 0x1F == 0x1F:
            if pos >= len(data):
                raise ApduError(SW.WRONG_DATA, "truncated tag")
            tag = (tag << 8) | data[pos]
            pos += 1
        length, pos = read_length(data, pos)
        if pos + length > len(data):
            raise ApduError(SW.WRONG_DATA, "TLV value overruns data")
        yield start, tag, data[pos : pos + length]
        pos += length


def iter_tlv(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (tag, value) for a sequence of BER-TLV objects; 6A80 when malformed."""
    for _, tag, value in iter_tlv_at(data):
        yield tag, value


def parse_tlv(data: bytes) -> dict[int, bytes]:
    """Top-level TLVs as a dict (last occurrence wins)."""
    return dict(iter_tlv(data))


class LvReader:
    """Reads the length-value fields of INSTALL and similar commands (GPCS 2.3.1 11.5.2.3)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def lv(self, *, ber: bool = False) -> bytes:
        """The next field; with `ber`, its length may use BER form (token, parameters)."""
        if ber:
            length, start = read_length(self._data, self._pos)
        else:
            if self._pos >= len(self._data):
                raise ApduError(SW.WRONG_DATA, "missing LV field")
            length, start = self._data[self._pos], self._pos + 1
        end = start + length
        if end > len(self._data):
            raise ApduError(SW.WRONG_DATA, "LV field overruns data")
        self._pos = end
        return self._data[start:end]

    @property
    def position(self) -> int:
        """Offset of the next unread byte."""
        return self._pos

    def at_end(self) -> bool:
        """True when every byte has been read."""
        return self._pos == len(self._data)
