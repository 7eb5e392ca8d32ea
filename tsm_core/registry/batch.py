"""A vendor's batch of SEs announced before the cards reach the TSM (docs/tsm.md, "Vendor batches").

JSON: `{"vendor": NAME, "profiles": {NAME: {scp, i, diversification, isd_aid, ...}}, "secure_elements": [{kdd,
profile, isd_key, isd_kvn, cplc, cin, iin, device_kind}, ...]}`. CSV: a header row naming the same SE fields
(`isd_key` may hold three labels separated by spaces; `vendor` per row), profiles already known. Hex values
are case-insensitive. Every entry is checked before anything is registered.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Final

from globalplatform.cplc import encode_cplc, parse_cplc
from globalplatform.errors import GpError
from tsm_core.errors import InvalidRequest
from tsm_core.registry.service import ProfileSpec, SeRegistration

SE_FIELDS: Final = frozenset({"kdd", "profile", "isd_key", "isd_kvn", "cplc", "cin", "iin", "device_kind", "vendor"})
PROFILE_FIELDS: Final = frozenset({"scp", "i", "diversification", "isd_aid", "kcv_method", "ssd_package_aid",
                                   "ssd_module_aid", "initial_ssd_key", "load_file_hash", "nv_memory",
                                   "volatile_memory"})
MAX_ENTRIES: Final = 100_000
"""Entries in one batch (a bigger one is split)."""


def _hex(value: object, what: str) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        raise InvalidRequest(f"{what} {value!r} is not hex") from None


def _byte(value: object, what: str) -> int:
    raw = _hex(value, what)
    if len(raw) != 1:
        raise InvalidRequest(f"{what} {value!r} is not one hex byte")
    return raw[0]


def _profile(name: str, data: dict[str, Any]) -> ProfileSpec:
    extra = set(data) - PROFILE_FIELDS
    if extra:
        raise InvalidRequest(f"profile {name}: unknown field(s) {', '.join(sorted(extra))}")
    try:
        return ProfileSpec(scp=_byte(data["scp"], "scp"), i=_byte(data["i"], "i"),
                           diversification=str(data.get("diversification", "none")),
                           isd_aid=_hex(data["isd_aid"], "isd_aid").hex().upper(),
                           kcv_method=str(data.get("kcv_method", "gp")),
                           ssd_package_aid=str(data.get("ssd_package_aid", "A0000001515350")),
                           ssd_module_aid=str(data.get("ssd_module_aid", "A000000151535041")),
                           initial_ssd_key=str(data.get("initial_ssd_key", "")),
                           load_file_hash=str(data.get("load_file_hash", "")),
                           nv_memory=data.get("nv_memory"), volatile_memory=data.get("volatile_memory"), name=name)
    except KeyError as exc:
        raise InvalidRequest(f"profile {name}: missing field {exc.args[0]}") from None


def _entry(n: int, data: dict[str, Any], profiles: dict[str, ProfileSpec], vendor: str) -> SeRegistration:
    try:
        return _registration(data, profiles, vendor)
    except InvalidRequest as exc:
        raise InvalidRequest(f"entry {n}: {exc}") from None


def _registration(data: dict[str, Any], profiles: dict[str, ProfileSpec], vendor: str) -> SeRegistration:
    extra = set(data) - SE_FIELDS
    if extra:
        raise InvalidRequest(f"unknown field(s) {', '.join(sorted(extra))}")
    try:
        profile_name = str(data["profile"])
        keys = data["isd_key"]
        kdd = _hex(data["kdd"], "kdd")
    except KeyError as exc:
        raise InvalidRequest(f"missing field {exc.args[0]}") from None
    profile = profiles.get(profile_name) or ProfileSpec(0, 0, "", "", name=profile_name)
    cplc_raw = _hex(data.get("cplc", ""), "cplc")
    try:
        cplc = parse_cplc(cplc_raw) if cplc_raw else None
    except GpError as exc:
        raise InvalidRequest(str(exc)) from None
    return SeRegistration(
        kdd=kdd, profile=profile, isd_keys=tuple(keys.split() if isinstance(keys, str) else keys),
        isd_kvn=_byte(data.get("isd_kvn", "FF"), "isd_kvn"), cin=_hex(data.get("cin", ""), "cin").hex().upper(),
        iin=_hex(data.get("iin", ""), "iin").hex().upper(),
        cplc=encode_cplc(cplc)[3:].hex().upper() if cplc else "",
        ic_serial=cplc.ic_serial_number.hex().upper() if cplc else "",
        device_kind=str(data.get("device_kind", "card")), vendor=str(data.get("vendor", vendor)))


def parse_batch(data: bytes) -> list[SeRegistration]:
    """The registrations of a JSON or CSV batch, or InvalidRequest naming the first bad entry."""
    text = data.decode("utf-8-sig", errors="replace").strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"the batch is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidRequest("the batch is a JSON object {vendor, profiles, secure_elements}")
        return parse_document(doc)
    else:
        reader = csv.DictReader(io.StringIO(text))
        unknown = set(reader.fieldnames or ()) - SE_FIELDS
        if unknown:
            raise InvalidRequest(f"CSV column(s) {', '.join(sorted(unknown))} unknown (known: "
                                 f"{', '.join(sorted(SE_FIELDS))})")
        rows = [{k: v for k, v in row.items() if v} for row in reader]
        return _entries(rows, {}, "")


def parse_document(doc: dict[str, Any]) -> list[SeRegistration]:
    """The registrations of a JSON batch already decoded (the API's body), or InvalidRequest."""
    profiles = {name: _profile(name, spec) for name, spec in dict(doc.get("profiles") or {}).items()}
    return _entries(list(doc.get("secure_elements") or []), profiles, str(doc.get("vendor") or ""))


def _entries(rows: list[dict[str, Any]], profiles: dict[str, ProfileSpec], vendor: str) -> list[SeRegistration]:
    if not rows:
        raise InvalidRequest("the batch has no secure elements")
    if len(rows) > MAX_ENTRIES:
        raise InvalidRequest(f"the batch has {len(rows)} entries; split it into batches of {MAX_ENTRIES}")
    return [_entry(n, row, profiles, vendor) for n, row in enumerate(rows, 1)]
