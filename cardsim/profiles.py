"""Card profiles: what a card model looks like when it leaves the factory (data files in cardsim/profiles/).

A profile names the SCP and its i parameter, the ISD's key set (a master key, diversified per card by
`diversification` with the card's KDD, or used as is), its KVN, the ISD (AID, privileges, life cycle),
the retry limit, the memory, the load files in ROM, and quirks (see `cardsim.identity.Quirks`).
Unknown fields and unsupported values are errors, never ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any, Final

from cardsim.applets import DEMO_LOAD_FILES
from cardsim.diversify import Diversification
from cardsim.errors import ProfileError, ProfileNotFound
from cardsim.identity import Quirks
from cardsim.lifecycle import CardLifeCycle
from cardsim.privileges import Privilege
from cardsim.scp02 import SUPPORTED_I as SCP02_I
from cardsim.scp03 import SUPPORTED_I as SCP03_I

DEFAULT_PROFILE: Final = "default"
PROFILE_DIR: Final = "profiles"
AES_LENGTHS: Final = frozenset({16, 24, 32})
DES_LENGTHS: Final = frozenset({16, 24})
ISD_FIELDS: Final = frozenset({"aid", "privileges", "life_cycle", "elf_aid", "elf_version"})
TOP_FIELDS: Final = frozenset(
    {
        "description",
        "scp",
        "i",
        "kvn",
        "master_key",
        "diversification",
        "kdd",
        "cplc",
        "atr",
        "iin",
        "cin",
        "isd",
        "retry_limit",
        "memory",
        "load_files",
        "sequence_counter",
        "quirks",
    }
)


@dataclass(frozen=True)
class Profile:
    """A validated profile."""

    name: str
    description: str
    scp: int
    i: int
    kvn: int
    master_key: bytes
    diversification: Diversification
    isd_aid: bytes
    isd_privileges: Privilege
    isd_life_cycle: CardLifeCycle
    retry_limit: int
    memory_nv: int
    memory_volatile: int
    load_files: tuple[bytes, ...] = ()
    isd_elf_aid: bytes = b""
    isd_elf_version: bytes | None = None
    kdd: bytes | None = None
    cplc: bytes | None = None
    atr: bytes | None = None
    iin: bytes | None = None
    cin: bytes | None = None
    sequence_counter: int = 0
    quirks: Quirks = field(default_factory=Quirks)

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, SCP{self.scp:02X} i={self.i:02X}, {self.diversification.value})"


def available_profiles() -> list[str]:
    """Names of the shipped profiles."""
    folder = resources.files("cardsim").joinpath(PROFILE_DIR)
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def load_profile(name: str | None) -> Profile:
    """Read and validate a shipped profile; `ProfileNotFound` / `ProfileError`."""
    name = name or DEFAULT_PROFILE
    if name not in available_profiles():
        raise ProfileNotFound(f"no card profile {name!r} (known: {', '.join(available_profiles())})")
    text = resources.files("cardsim").joinpath(PROFILE_DIR, f"{name}.json").read_text("utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {name!r}: {exc}") from exc
    try:
        return _parse(name, data)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProfileError(f"profile {name!r}: {exc}") from exc


def _hex(data: dict[str, Any], key: str) -> bytes | None:
    value = data.get(key)
    return None if value is None else bytes.fromhex(str(value))


def _unknown(data: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = set(data) - allowed
    if extra:
        raise ValueError(f"unknown field(s) in {where}: {', '.join(sorted(extra))}")


def _quirks(data: dict[str, Any]) -> Quirks:
    known = {f.name for f in fields(Quirks)}
    _unknown(data, frozenset(known), "quirks")
    values: dict[str, Any] = {k: bytes.fromhex(v) if k == "ssd_keys" else int(v) for k, v in data.items()}
    return Quirks(**values)


def _parse(name: str, data: dict[str, Any]) -> Profile:
    _unknown(data, TOP_FIELDS, "profile")
    isd = data["isd"]
    _unknown(isd, ISD_FIELDS, "isd")
    scp, i = int(data["scp"], 16), int(data["i"], 16)
    if (scp, i) not in {(0x02, x) for x in SCP02_I} | {(0x03, x) for x in SCP03_I}:
        raise ValueError(f"unsupported SCP {scp:02X} i={i:02X}")
    master = bytes.fromhex(data["master_key"])
    if len(master) not in (DES_LENGTHS if scp == 0x02 else AES_LENGTHS):
        raise ValueError("master key length does not fit the SCP")
    load_files = tuple(bytes.fromhex(a) for a in data.get("load_files", []))
    unknown_elfs = [a.hex() for a in load_files if a not in DEMO_LOAD_FILES]
    if unknown_elfs:
        raise ValueError(f"no ROM load file {unknown_elfs}")
    memory = data["memory"]
    _unknown(memory, frozenset({"nv", "volatile"}), "memory")
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        scp=scp,
        i=i,
        kvn=int(data.get("kvn", "FF"), 16),
        master_key=master,
        diversification=Diversification(data.get("diversification", "none")),
        isd_aid=bytes.fromhex(isd["aid"]),
        isd_privileges=Privilege(int(isd.get("privileges", "9EFE80"), 16)),
        isd_life_cycle=CardLifeCycle[isd.get("life_cycle", "SECURED")],
        retry_limit=int(data.get("retry_limit", 10)),
        memory_nv=int(memory["nv"]),
        memory_volatile=int(memory["volatile"]),
        load_files=load_files,
        isd_elf_aid=_hex(isd, "elf_aid") or b"",
        isd_elf_version=_hex(isd, "elf_version"),
        kdd=_hex(data, "kdd"),
        cplc=_hex(data, "cplc"),
        atr=_hex(data, "atr"),
        iin=_hex(data, "iin"),
        cin=_hex(data, "cin"),
        sequence_counter=int(data.get("sequence_counter", 0)),
        quirks=_quirks(data.get("quirks", {})),
    )
