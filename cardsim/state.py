"""Creating cards from profiles and keeping them in JSON state files (hex for bytes).

The state file is the card's own non-volatile memory, keys included (a simulator's secret store). It is
written atomically: a temporary file in the same directory, flushed and fsynced, then `os.replace`.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from cardsim.applets import DEMO_LOAD_FILES
from cardsim.card import Card
from cardsim.diversify import diversify
from cardsim.errors import StateFileError
from cardsim.identity import CardIdentity, Quirks
from cardsim.keys import KeyId, KeyType, scp_key_set
from cardsim.profiles import Profile, load_profile
from cardsim.registry import Application, LoadFile, Registry, SecurityDomainData

FORMAT: Final = "cardsim-state/1"
HISTORICAL_BYTES: Final = b"CARDSIM1"
TAG_IIN: Final = 0x42
TAG_CIN: Final = 0x45


def make_atr(historical: bytes) -> bytes:
    """A T=1 ATR: 3B, T0, TD1 = 80, TD2 = 01, historical bytes, TCK (ISO/IEC 7816-3 8.2)."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


def make_cplc() -> bytes:
    """42-byte CPLC (GPCS 2.3.1 H.6) with a random IC serial number and batch identifier."""
    head = bytes.fromhex("4353") + bytes.fromhex("4D31") + bytes.fromhex("0231") + bytes.fromhex("5001")
    head += bytes.fromhex("0100") + bytes.fromhex("5060")
    return head + secrets.token_bytes(4) + secrets.token_bytes(2) + bytes(42 - 18)


def kdd_from_cplc(cplc: bytes) -> bytes:
    """KDD = IC fabricator (2) || IC type (2) || IC serial number (4) || IC batch identifier (2)."""
    return cplc[0:4] + cplc[12:18]


def new_card(profile_name: str | None) -> Card:
    """A factory-fresh card of the named profile (the default profile when None)."""
    profile = load_profile(profile_name)
    return card_from_profile(profile)


def card_from_profile(profile: Profile) -> Card:
    """Manufacture a card: CPLC, KDD, diversified ISD keys, ROM load files."""
    cplc = profile.cplc or make_cplc()
    kdd = profile.kdd or kdd_from_cplc(cplc)
    key_type = KeyType.DES if profile.scp == 0x02 else KeyType.AES
    enc, mac, dek = (diversify(profile.diversification, profile.master_key, kdd, k) for k in KeyId)
    data_objects = {TAG_CIN: profile.cin or kdd}
    if profile.iin:
        data_objects[TAG_IIN] = profile.iin
    sd = SecurityDomainData(
        scp=profile.scp,
        i=profile.i,
        keysets={profile.kvn: scp_key_set(profile.kvn, enc, mac, dek, key_type)},
        sequence_counter=profile.sequence_counter,
        retry_limit=profile.retry_limit,
        quota_nv=profile.memory_nv,
        quota_volatile=profile.memory_volatile,
        data_objects=data_objects,
    )
    isd = Application(
        aid=profile.isd_aid,
        elf_aid=profile.isd_elf_aid,
        module_aid=b"",
        privileges=profile.isd_privileges,
        life_cycle=profile.isd_life_cycle,
        sd_aid=profile.isd_aid,
        sd=sd,
        elf_version=profile.isd_elf_version,
    )
    registry = Registry(profile.isd_aid, {isd.aid: isd})
    for elf_aid in profile.load_files:
        # ROM load files: part of the card image, not charged against the ISD's quota
        registry.load_files[elf_aid] = LoadFile(elf_aid, profile.isd_aid, list(DEMO_LOAD_FILES[elf_aid]))
    identity = CardIdentity(profile.name, profile.atr or make_atr(HISTORICAL_BYTES), cplc, kdd, profile.quirks)
    return Card(identity, registry)


def card_to_json(card: Card) -> dict[str, Any]:
    """The persistent state of a card."""
    ident = card.identity
    quirks = asdict(ident.quirks)
    quirks["ssd_keys"] = ident.quirks.ssd_keys.hex()
    return {
        "format": FORMAT,
        "profile": ident.profile,
        "atr": ident.atr.hex(),
        "cplc": ident.cplc.hex(),
        "kdd": ident.kdd.hex(),
        "quirks": quirks,
        "confirmation_counter": card.confirmation_counter,
        "registry": card.registry.to_json(),
    }


def card_from_json(data: dict[str, Any]) -> Card:
    """Inverse of `card_to_json`; `StateFileError` when the content does not fit."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFileError(f"not a {FORMAT} state file")
    try:
        raw_quirks = dict(data["quirks"])
        raw_quirks["ssd_keys"] = bytes.fromhex(raw_quirks["ssd_keys"])
        identity = CardIdentity(
            str(data["profile"]),
            bytes.fromhex(data["atr"]),
            bytes.fromhex(data["cplc"]),
            bytes.fromhex(data["kdd"]),
            Quirks(**raw_quirks),
        )
        return Card(identity, Registry.from_json(data["registry"]), int(data["confirmation_counter"]))
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise StateFileError(f"corrupt state file: {exc!r}") from exc


def dumps(card: Card) -> str:
    """The state file text."""
    return json.dumps(card_to_json(card), indent=1, sort_keys=True) + "\n"


def save_card(card: Card, path: str | os.PathLike[str]) -> None:
    """Write the state file atomically (temp file + fsync + os.replace)."""
    target = Path(path)
    text = dumps(card)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or Path("."))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StateFileError(f"cannot write {target}: {exc.strerror or exc}") from exc


def load_card(path: str | os.PathLike[str]) -> Card:
    """Read a state file; `StateFileError` when missing, unreadable or malformed."""
    target = Path(path)
    try:
        text = target.read_text("utf-8")
    except OSError as exc:
        raise StateFileError(f"cannot read {target}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise StateFileError(f"{target} is not UTF-8 text, so not a state file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{target} is not JSON: {exc}") from exc
    except RecursionError:
        raise StateFileError(f"{target} is nested too deeply to be a state file") from None
    return card_from_json(data)
