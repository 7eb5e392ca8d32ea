"""The GlobalPlatform Registry (GPCS 2.3.1 6.5 and 11.1.9): Executable Load Files with their modules,
application instances and Security Domains, each with its life cycle, privileges and associated SD."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cardsim.keys import KeySet
from cardsim.lifecycle import ElfLifeCycle
from cardsim.privileges import Privilege
from cardsim.sw import SW, ApduError


@dataclass
class SecurityDomainData:
    """What an SD holds beyond an application entry: keys, secure channel parameters, counters, quota."""

    scp: int
    i: int
    keysets: dict[int, KeySet]
    sequence_counter: int = 0
    retry_limit: int = 10
    failed_authentications: int = 0
    quota_nv: int | None = None
    """Non-volatile quota (install parameter C8); None = shares the quota of its associated SD."""
    quota_volatile: int | None = None
    """Volatile quota (install parameter C7)."""
    data_objects: dict[int, bytes] = field(default_factory=dict)
    """IIN (42), CIN (45), card data (66) set by STORE DATA to this SD."""

    def __repr__(self) -> str:
        return f"SecurityDomainData(scp={self.scp:02X}, i={self.i:02X}, kvns={sorted(self.keysets)})"

    @property
    def blocked(self) -> bool:
        """Retry limit reached: INITIALIZE UPDATE answers 6983."""
        return self.failed_authentications >= self.retry_limit

    def to_json(self) -> dict[str, Any]:
        """State-file form."""
        return {
            "scp": self.scp,
            "i": self.i,
            "keysets": [ks.to_json() for ks in self.keysets.values()],
            "sequence_counter": self.sequence_counter,
            "retry_limit": self.retry_limit,
            "failed_authentications": self.failed_authentications,
            "quota_nv": self.quota_nv,
            "quota_volatile": self.quota_volatile,
            "data_objects": {f"{tag:X}": value.hex() for tag, value in self.data_objects.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SecurityDomainData:
        """Inverse of `to_json`."""
        keysets = [KeySet.from_json(ks) for ks in data["keysets"]]
        return cls(
            scp=int(data["scp"]),
            i=int(data["i"]),
            keysets={ks.kvn: ks for ks in keysets},
            sequence_counter=int(data["sequence_counter"]),
            retry_limit=int(data["retry_limit"]),
            failed_authentications=int(data["failed_authentications"]),
            quota_nv=data["quota_nv"],
            quota_volatile=data["quota_volatile"],
            data_objects={int(t, 16): bytes.fromhex(v) for t, v in data["data_objects"].items()},
        )


@dataclass
class LoadFile:
    """An Executable Load File and its Executable Modules (GPCS 2.3.1 5.2)."""

    aid: bytes
    sd_aid: bytes
    modules: list[bytes]
    version: bytes = b"\x01\x00"
    nv: int = 0
    life_cycle: int = ElfLifeCycle.LOADED

    def to_json(self) -> dict[str, Any]:
        """State-file form."""
        return {
            "aid": self.aid.hex(),
            "sd_aid": self.sd_aid.hex(),
            "modules": [m.hex() for m in self.modules],
            "version": self.version.hex(),
            "nv": self.nv,
            "life_cycle": self.life_cycle,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadFile:
        """Inverse of `to_json`."""
        return cls(
            bytes.fromhex(data["aid"]),
            bytes.fromhex(data["sd_aid"]),
            [bytes.fromhex(m) for m in data["modules"]],
            bytes.fromhex(data["version"]),
            int(data["nv"]),
            int(data["life_cycle"]),
        )


@dataclass
class Application:
    """An application instance or Security Domain (the ISD included)."""

    aid: bytes
    elf_aid: bytes
    module_aid: bytes
    privileges: Privilege
    life_cycle: int
    sd_aid: bytes
    """Associated SD (the ISD is associated with itself)."""
    nv: int = 0
    volatile: int = 0
    install_params: bytes = b""
    applet_state: dict[str, Any] = field(default_factory=dict)
    sd: SecurityDomainData | None = None
    elf_version: bytes | None = None
    """Version shown in GET STATUS tag CE for the ISD (some cards report the OPEN's version there)."""

    @property
    def is_sd(self) -> bool:
        """Holds the Security Domain privilege."""
        return bool(self.privileges & Privilege.SECURITY_DOMAIN)

    def to_json(self) -> dict[str, Any]:
        """State-file form."""
        return {
            "aid": self.aid.hex(),
            "elf_aid": self.elf_aid.hex(),
            "module_aid": self.module_aid.hex(),
            "privileges": self.privileges.to_bytes3().hex(),
            "life_cycle": self.life_cycle,
            "sd_aid": self.sd_aid.hex(),
            "nv": self.nv,
            "volatile": self.volatile,
            "install_params": self.install_params.hex(),
            "applet_state": self.applet_state,
            "sd": self.sd.to_json() if self.sd else None,
            "elf_version": self.elf_version.hex() if self.elf_version is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Application:
        """Inverse of `to_json`."""
        return cls(
            aid=bytes.fromhex(data["aid"]),
            elf_aid=bytes.fromhex(data["elf_aid"]),
            module_aid=bytes.fromhex(data["module_aid"]),
            privileges=Privilege(int(data["privileges"], 16)),
            life_cycle=int(data["life_cycle"]),
            sd_aid=bytes.fromhex(data["sd_aid"]),
            nv=int(data["nv"]),
            volatile=int(data["volatile"]),
            install_params=bytes.fromhex(data["install_params"]),
            applet_state=dict(data["applet_state"]),
            sd=SecurityDomainData.from_json(data["sd"]) if data["sd"] else None,
            elf_version=bytes.fromhex(data["elf_version"]) if data["elf_version"] is not None else None,
        )


@dataclass
class Registry:
    """All card content; `apps` holds the ISD first, in installation order."""

    isd_aid: bytes
    apps: dict[bytes, Application] = field(default_factory=dict)
    load_files: dict[bytes, LoadFile] = field(default_factory=dict)

    @property
    def isd(self) -> Application:
        """The Issuer Security Domain."""
        return self.apps[self.isd_aid]

    def app(self, aid: bytes) -> Application:
        """The application with this AID; 6A88 when absent."""
        entry = self.apps.get(aid)
        if entry is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such application")
        return entry

    def sd(self, aid: bytes) -> Application:
        """The Security Domain with this AID; 6A88 when absent or not an SD."""
        entry = self.app(aid)
        if not entry.is_sd:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "not a security domain")
        return entry

    def associated_with(self, sd_aid: bytes) -> Iterator[Application | LoadFile]:
        """Every entry (other than the SD itself) whose associated SD is `sd_aid`."""
        for app in self.apps.values():
            if app.sd_aid == sd_aid and app.aid != sd_aid:
                yield app
        for elf in self.load_files.values():
            if elf.sd_aid == sd_aid:
                yield elf

    def instances_of(self, elf_aid: bytes) -> list[Application]:
        """Applications instantiated from this load file."""
        return [app for app in self.apps.values() if app.elf_aid == elf_aid and app.aid != self.isd_aid]

    def to_json(self) -> dict[str, Any]:
        """State-file form."""
        return {
            "isd_aid": self.isd_aid.hex(),
            "apps": [a.to_json() for a in self.apps.values()],
            "load_files": [e.to_json() for e in self.load_files.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Registry:
        """Inverse of `to_json`."""
        apps = [Application.from_json(a) for a in data["apps"]]
        elfs = [LoadFile.from_json(e) for e in data["load_files"]]
        return cls(
            bytes.fromhex(data["isd_aid"]),
            {a.aid: a for a in apps},
            {e.aid: e for e in elfs},
        )
