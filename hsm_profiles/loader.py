"""Load HSM profiles and compare a profile with what a token really reports."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from pkcs11.mechanisms import Mechanism

# PKCS#11 v3.0 mechanisms python-pkcs11 0.10 does not name (PKCS#11 v3.0 §2.43).
EXTRA_MECHANISMS: Final[dict[str, int]] = {"SP800_108_COUNTER_KDF": 0x3AC, "SP800_108_FEEDBACK_KDF": 0x3AD,
                                           "SP800_108_DOUBLE_PIPELINE_KDF": 0x3AE}
KNOWN: Final[dict[str, int]] = {**{m.name: int(m) for m in Mechanism}, **EXTRA_MECHANISMS}


class ProfileError(Exception):
    """A profile is unknown or malformed."""

    code = "hsm_profile_error"


@dataclass(frozen=True)
class HsmProfile:
    """One HSM's declared capabilities (PKCS#11 v2.40 mechanism names without the CKM_ prefix) and, per
    key-service operation, the strategy used on it (names checked by keyservice.strategy)."""

    name: str
    vendor: str
    tested: bool
    module: str
    source: str
    mechanisms: frozenset[str]
    absent: frozenset[str]
    vendor_mechanisms: tuple[str, ...]
    strategies: dict[str, str]

    def has(self, mechanism: str) -> bool:
        """Whether the profile declares the standard mechanism `mechanism`."""
        return mechanism in self.mechanisms


def names() -> list[str]:
    """The shipped profiles."""
    folder = resources.files("hsm_profiles").joinpath("profiles")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load(name: str) -> HsmProfile:
    """The shipped profile `name`, or an operator's own profile given as the path of a `.toml` file."""
    if name.endswith(".toml"):
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"cannot read the HSM profile {path}: {exc.__class__.__name__}") from None
    elif name in names():
        text = resources.files("hsm_profiles").joinpath("profiles", f"{name}.toml").read_text()
    else:
        raise ProfileError(f"unknown HSM profile {name!r} (known: {', '.join(names())}; or the path of a .toml file)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"the HSM profile {name} is not valid TOML: {exc}") from None
    try:
        mechanisms = frozenset(raw["mechanisms"])
        unknown = {m for m in mechanisms | frozenset(raw.get("absent", [])) if m not in KNOWN}
        if unknown:
            raise ProfileError(f"profile {name}: unknown mechanisms {', '.join(sorted(unknown))}")
        return HsmProfile(str(raw["name"]), str(raw["vendor"]), bool(raw["tested"]), str(raw["module"]),
                          str(raw["source"]), mechanisms, frozenset(raw.get("absent", [])),
                          tuple(raw.get("vendor_mechanisms", [])),
                          {str(k): str(v) for k, v in dict(raw["strategies"]).items()})
    except KeyError as exc:
        raise ProfileError(f"profile {name} lacks the field {exc.args[0]}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ProfileError(f"profile {name} has a field of the wrong type ({exc.__class__.__name__})") from None


@dataclass(frozen=True)
class ProfileComparison:
    """Profile against token: declared but missing, and present though declared absent."""

    declared_missing: list[str]
    absent_present: list[str]

    @property
    def matches(self) -> bool:
        return not (self.declared_missing or self.absent_present)


def compare(profile: HsmProfile, reported: set[int]) -> ProfileComparison:
    """Compare the profile's declaration with the CKM values a token reports."""
    names_reported = {name for name, value in KNOWN.items() if value in reported}
    return ProfileComparison(sorted(profile.mechanisms - names_reported), sorted(profile.absent & names_reported))
