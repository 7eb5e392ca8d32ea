"""Reading the Executable Modules out of a Load File Data Block: a Java Card CAP file's components
concatenated (JCVM 3.0.5 6.1: tag u1, size u2, info), as GP hosts load them.

Only the Header (tag 1: package AID, version) and Applet (tag 3: applet AIDs) components are read; the
other components are walked over by their size. Anything else is refused with 6A80, as a card would.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from cardsim.sw import SW, ApduError

MAGIC: Final = bytes.fromhex("DECAFFED")


@unique
class Component(IntEnum):
    """CAP component tags (JCVM 6.1 Table 6-1) used here."""

    HEADER = 1
    APPLET = 3


@dataclass(frozen=True)
class LoadFileContent:
    """Package AID, package version (major, minor) and the applet (module) AIDs."""

    package_aid: bytes
    version: bytes
    modules: list[bytes]


def _components(lfdb: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    pos = 0
    while pos < len(lfdb):
        if pos + 3 > len(lfdb):
            raise ApduError(SW.WRONG_DATA, "truncated CAP component")
        tag, size = lfdb[pos], int.from_bytes(lfdb[pos + 1 : pos + 3], "big")
        if pos + 3 + size > len(lfdb):
            raise ApduError(SW.WRONG_DATA, "CAP component overruns the load file")
        found[tag] = lfdb[pos + 3 : pos + 3 + size]
        pos += 3 + size
    return found


def read_load_file(lfdb: bytes) -> LoadFileContent:
    """Package and modules of a CAP-format load file; 6A80 when it is not one."""
    components = _components(lfdb)
    header = components.get(Component.HEADER)
    # header: magic(4) minor(1) major(1) flags(1) | package: minor(1) major(1) AID length(1) AID
    if header is None or len(header) < 10 or header[:4] != MAGIC:
        raise ApduError(SW.WRONG_DATA, "no CAP Header component")
    aid_length = header[9]
    package_aid = header[10 : 10 + aid_length]
    if len(package_aid) != aid_length or not 5 <= aid_length <= 16:
        raise ApduError(SW.WRONG_DATA, "bad package AID")
    modules: list[bytes] = []
    applet = components.get(Component.APPLET, b"")
    if applet:
        pos = 1
        for _ in range(applet[0]):
            if pos >= len(applet):
                raise ApduError(SW.WRONG_DATA, "truncated Applet component")
            length = applet[pos]
            modules.append(applet[pos + 1 : pos + 1 + length])
            pos += 1 + length + 2  # AID, install method offset (u2)
        if pos != len(applet):
            raise ApduError(SW.WRONG_DATA, "bad Applet component")
    return LoadFileContent(package_aid, bytes([header[8], header[7]]), modules)


def build_load_file(package_aid: bytes, modules: list[bytes], version: tuple[int, int] = (1, 0)) -> bytes:
    """A minimal CAP-format load file (Header + Applet components), for tests and demos."""
    header = MAGIC + bytes([1, 2, 0, version[1], version[0], len(package_aid)]) + package_aid
    applet = bytes([len(modules)]) + b"".join(bytes([len(m)]) + m + b"\x00\x00" for m in modules)
    out = bytes([Component.HEADER]) + len(header).to_bytes(2, "big") + header
    if modules:
        out += bytes([Component.APPLET]) + len(applet).to_bytes(2, "big") + applet
    return out
