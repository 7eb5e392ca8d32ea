"""GP command builders for the card simulator's tests (GPCS 2.3.1 chapter 11). Tests only."""

from __future__ import annotations


def lv(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes(2, "big") if tag > 0xFF else bytes([tag])
    return tag_bytes + ber_length(len(value)) + value


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    out = bytes([cla, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    if le is not None:
        out += bytes([le])
    return out


def select(aid: bytes) -> bytes:
    return apdu(0x00, 0xA4, 0x04, 0x00, aid, 0)


def get_status(p1: int, prefix: bytes = b"", p2: int = 0x02) -> bytes:
    return apdu(0x80, 0xF2, p1, p2, tlv(0x4F, prefix))


def system_params(nv: int | None = None, volatile: int | None = None, code: int | None = None) -> bytes:
    inner = b""
    if code is not None:
        inner += tlv(0xC6, code.to_bytes(2, "big"))
    if volatile is not None:
        inner += tlv(0xC7, volatile.to_bytes(2, "big"))
    if nv is not None:
        inner += tlv(0xC8, nv.to_bytes(2, "big"))
    return tlv(0xEF, inner) if inner else b""


def install_for_load_data(elf: bytes, sd: bytes = b"", hash_: bytes = b"", params: bytes = b"") -> bytes:
    return lv(elf) + lv(sd) + lv(hash_) + lv(params)


def install_data(elf: bytes, module: bytes, app: bytes, privileges: bytes = b"\x00", params: bytes = b"") -> bytes:
    return lv(elf) + lv(module) + lv(app) + lv(privileges) + lv(params or tlv(0xC9, b""))


def ber_length(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big")


def with_token(data: bytes, token: bytes = b"") -> bytes:
    return data + ber_length(len(token)) + token


def install(p1: int, data_without_token: bytes, token: bytes = b"") -> bytes:
    return apdu(0x80, 0xE6, p1, 0x00, with_token(data_without_token, token))


def load_blocks(lfdb: bytes, dap_blocks: bytes = b"", block: int = 200) -> list[bytes]:
    data = dap_blocks + b"\xc4" + ber_length(len(lfdb)) + lfdb
    chunks = [data[i : i + block] for i in range(0, len(data), block)]
    return [apdu(0x80, 0xE8, 0x80 if n == len(chunks) - 1 else 0x00, n, c) for n, c in enumerate(chunks)]


def delete(aid: bytes, related: bool = False, token: bytes = b"") -> bytes:
    data = tlv(0x4F, aid) + (tlv(0x9E, token) if token else b"")
    return apdu(0x80, 0xE4, 0x00, 0x80 if related else 0x00, data)


def set_status(p1: int, p2: int, aid: bytes = b"") -> bytes:
    return apdu(0x80, 0xF0, p1, p2, aid)


def store_data(p1: int, p2: int, data: bytes) -> bytes:
    return apdu(0x80, 0xE2, p1, p2, data)


def dgi(number: int, value: bytes) -> bytes:
    return number.to_bytes(2, "big") + bytes([len(value)]) + value


def cap_file(package: bytes, applets: list[bytes], filler: int = 0) -> bytes:
    """A load file in CAP component layout: Header (1), Applet (3) and a Method (7) component of `filler` bytes."""
    header = bytes.fromhex("DECAFFED") + bytes([1, 2, 0, 0, 1, len(package)]) + package
    applet = bytes([len(applets)]) + b"".join(lv(a) + b"\x00\x10" for a in applets)
    out = b"\x01" + len(header).to_bytes(2, "big") + header
    out += b"\x03" + len(applet).to_bytes(2, "big") + applet
    return out + b"\x07" + filler.to_bytes(2, "big") + bytes(filler)
