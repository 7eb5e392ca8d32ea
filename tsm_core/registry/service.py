"""The SE registry: tenants, SE profiles, secure elements, their security domains and key sets, and the card
content as the card last reported it (GET STATUS, GPCS 2.3.1 §11.4).

The registry never claims what the card does not have: content rows are written from GET STATUS answers only
(`record_content`), and a job's result is recorded after the card confirmed it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from string import hexdigits
from typing import Final

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from globalplatform.cplc import CPLC_FIELDS, field_span
from tsm_core.context import Tsm, now
from tsm_core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from tsm_core.flows.list_content import CardContent
from tsm_core.gp.getstatus import StatusEntry
from tsm_core.registry.models import CardEntry, SdKeySet, SecureElement, SecurityDomain, SeProfile, Tenant
from tsm_core.registry.views import DomainView, ProfileView, SeView, TenantView
from tsm_core.tenancy import ISSUER, Scope

NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Tenant and profile names: letters, digits, `_ . -`, 1 to 64 characters (they appear in key owners)."""
TENANT_KINDS: Final = ("issuer", "sp", "vendor")
SD_MODES: Final = ("cm", "am", "dm")
DEVICE_KINDS: Final = ("phone", "wearable", "iot", "card")


def check_name(name: str, what: str) -> str:
    """A tenant or profile name, or InvalidRequest."""
    if not NAME.fullmatch(name):
        raise InvalidRequest(f"{what} {name!r} is not a name: 1 to 64 letters, digits, '_', '.' or '-', starting "
                             "with a letter or digit")
    return name


def se_id_for(kdd: bytes) -> str:
    """The SE id: `se-` and the card's key diversification data (what INITIALIZE UPDATE returns), in hex."""
    return "se-" + kdd.hex()


# ---- tenants -------------------------------------------------------------------------------------------------


def add_tenant(tsm: Tsm, name: str, kind: str, sd_mode: str = "cm") -> TenantView:
    """Register a service provider, an SE vendor or the issuer (names are unique across kinds)."""
    tsm.scope.only("issuer", action="registering tenants")
    check_name(name, "a tenant name")
    if kind not in TENANT_KINDS:
        raise InvalidRequest(f"tenant kind {kind!r} is not one of {', '.join(TENANT_KINDS)}")
    if sd_mode not in SD_MODES:
        raise InvalidRequest(f"GP mode {sd_mode!r} is not one of {', '.join(SD_MODES)}")
    try:
        with tsm.transaction() as db:
            row = Tenant(kind=kind, name=name, sd_mode=sd_mode, created_at=now())
            db.add(row)
            db.flush()
            return TenantView.of(row)
    except IntegrityError:
        raise Conflict(f"a tenant named {name!r} already exists") from None


def list_tenants(tsm: Tsm, kind: str | None = None) -> list[TenantView]:
    """Tenants by name, of one kind or all."""
    query = select(Tenant).order_by(Tenant.name)
    if kind is not None:
        query = query.where(Tenant.kind == kind)
    with tsm.sessions() as db:
        return [TenantView.of(t) for t in db.execute(query).scalars()]


def tenant_row(db: Session, name: str, kind: str | None = None) -> Tenant:
    """The tenant called `name` (of `kind`), or NotFound."""
    row = db.execute(select(Tenant).where(Tenant.name == name)).scalar_one_or_none()
    if row is None or (kind is not None and row.kind != kind):
        what = {"sp": "service provider", "vendor": "SE vendor"}.get(kind or "", "tenant")
        raise NotFound(f"no {what} named {name!r} (tsm sp list)")
    return row


# ---- SE profiles ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSpec:
    """An SE profile as discovery found it or a vendor declared it."""

    scp: int
    i: int
    diversification: str
    isd_aid: str
    kcv_method: str = "gp"
    ssd_package_aid: str = "A0000001515350"
    ssd_module_aid: str = "A000000151535041"
    initial_ssd_key: str = ""
    load_file_hash: str = ""
    nv_memory: int | None = None
    volatile_memory: int | None = None
    name: str = ""

    @property
    def reference_only(self) -> bool:
        """A spec that only names an existing profile (scp 0)."""
        return self.scp == 0

    @property
    def default_name(self) -> str:
        return self.name or f"scp{self.scp:02x}-i{self.i:02x}-{self.diversification}-{self.isd_aid.lower()}"


def _profile_row(db: Session, spec: ProfileSpec) -> SeProfile:
    """The profile named by `spec`, created (or completed) from it."""
    name = check_name(spec.default_name, "an SE profile name")
    row = db.execute(select(SeProfile).where(SeProfile.name == name)).scalar_one_or_none()
    if spec.reference_only:
        if row is None:
            raise NotFound(f"no SE profile named {name!r} (tsm se profiles)")
        return row
    if row is None:
        row = SeProfile(name=name, scp=spec.scp, i=spec.i, diversification=spec.diversification,
                        kcv_method=spec.kcv_method, isd_aid=spec.isd_aid.upper(),
                        ssd_package_aid=spec.ssd_package_aid.upper(), ssd_module_aid=spec.ssd_module_aid.upper(),
                        initial_ssd_key=spec.initial_ssd_key, load_file_hash=spec.load_file_hash,
                        nv_memory=spec.nv_memory, volatile_memory=spec.volatile_memory)
        db.add(row)
        db.flush()
    elif (row.scp, row.i, row.isd_aid) != (spec.scp, spec.i, spec.isd_aid.upper()):
        raise Conflict(f"SE profile {name!r} exists with SCP{row.scp:02X} i={row.i:02X} ISD {row.isd_aid}; the "
                       f"card says SCP{spec.scp:02X} i={spec.i:02X} ISD {spec.isd_aid.upper()}")
    elif spec.initial_ssd_key and not row.initial_ssd_key:
        row.initial_ssd_key = spec.initial_ssd_key
    return row


def list_profiles(tsm: Tsm) -> list[ProfileView]:
    """SE profiles by name."""
    with tsm.sessions() as db:
        return [ProfileView.of(p) for p in db.execute(select(SeProfile).order_by(SeProfile.name)).scalars()]


def set_initial_ssd_key(tsm: Tsm, profile: str, label: str) -> ProfileView:
    """Name the key-service key a newly installed SSD of this profile starts with (the SE vendor's)."""
    with tsm.transaction() as db:
        row = db.execute(select(SeProfile).where(SeProfile.name == profile)).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no SE profile named {profile!r}")
        row.initial_ssd_key = label
        return ProfileView.of(row)


# ---- secure elements ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeRegistration:
    """What is known of one SE when it is registered: by discovery (from the card) or by its vendor."""

    kdd: bytes
    profile: ProfileSpec
    isd_keys: tuple[str, ...]
    isd_kvn: int
    cin: str = ""
    iin: str = ""
    cplc: str = ""
    ic_serial: str = ""
    device_kind: str = "card"
    vendor: str = ""
    life_cycle: str = ""
    free_nv: int | None = None
    free_volatile: int | None = None
    seen: bool = False
    """True when the card itself was read (discovery), False for a vendor's announcement."""
    content: CardContent | None = field(default=None, compare=False)


def _check_registration(reg: SeRegistration) -> None:
    if not 1 <= len(reg.kdd) <= 16:
        raise InvalidRequest(f"key diversification data is 1 to 16 bytes, not {len(reg.kdd)}")
    if reg.device_kind not in DEVICE_KINDS:
        raise InvalidRequest(f"device kind {reg.device_kind!r} is not one of {', '.join(DEVICE_KINDS)}")
    if len(reg.isd_keys) not in (1, 3):
        raise InvalidRequest("the ISD key is one key label (ENC = MAC = DEK, or the KMC) or three (ENC MAC DEK)")
    if not 0 <= reg.isd_kvn <= 0xFF:
        raise InvalidRequest(f"key version number {reg.isd_kvn} is not a byte")


def register(tsm: Tsm, reg: SeRegistration) -> str:
    """Register an SE (or refresh it when its KDD is known): profile, ISD with its key set, content.

    Returns the SE id. A vendor's announcement of a KDD already registered is a Conflict; a discovery of it
    refreshes what the card said.
    """
    _check_registration(reg)
    _check_vendor(tsm, reg)
    with tsm.transaction() as db:
        return _register(db, reg)


def _check_vendor(tsm: Tsm, reg: SeRegistration) -> None:
    """An SE vendor registers its own SEs only; a service provider none."""
    tsm.scope.only("issuer", "vendor", action="registering SEs")
    if tsm.scope.kind == "vendor" and reg.vendor != tsm.scope.name:
        raise Forbidden(f"{tsm.scope} registers its own SEs only (vendor {reg.vendor or 'none'} given)")


def import_batch(tsm: Tsm, regs: Sequence[SeRegistration]) -> list[str]:
    """Register a vendor's batch in one transaction: every SE, or none when one is refused."""
    for n, reg in enumerate(regs, 1):
        try:
            _check_registration(reg)
            _check_vendor(tsm, reg)
        except (InvalidRequest, Forbidden) as exc:
            raise InvalidRequest(f"entry {n}: {exc}") from None
    ids: list[str] = []
    with tsm.transaction() as db:
        for n, reg in enumerate(regs, 1):
            try:
                ids.append(_register(db, reg))
            except (Conflict, NotFound, InvalidRequest) as exc:
                raise type(exc)(f"entry {n}: {exc}; nothing was imported") from None
    return ids


def _register(db: Session, reg: SeRegistration) -> str:
    se_id = se_id_for(reg.kdd)
    profile = _profile_row(db, reg.profile)
    vendor = tenant_row(db, reg.vendor, "vendor").id if reg.vendor else None
    row = db.get(SecureElement, se_id)
    stamp = now()
    if row is None:
        row = SecureElement(id=se_id, kdd=reg.kdd.hex().upper(), profile_id=profile.id, vendor_id=vendor,
                            isd_key=" ".join(reg.isd_keys), isd_kvn=reg.isd_kvn, device_kind=reg.device_kind,
                            registered_at=stamp)
        db.add(row)
    elif not reg.seen:
        raise Conflict(f"SE {se_id} is already registered")
    else:
        row.profile_id = profile.id
    for name in ("cin", "iin", "cplc", "ic_serial", "life_cycle", "free_nv", "free_volatile"):
        value = getattr(reg, name)
        if value not in ("", None):
            setattr(row, name, value)
    if reg.seen:
        row.seen_at = stamp
    db.flush()
    isd = _domain_row(db, se_id, profile.isd_aid)
    if isd is None:
        isd = SecurityDomain(se_id=se_id, aid=profile.isd_aid, parent_aid="", mode="isd", sp_id=None,
                             privileges="", life_cycle=reg.life_cycle)
        db.add(isd)
        db.flush()
    if reg.seen or not _key_sets(db, isd.id):
        _record_key_set(db, isd.id, reg.isd_kvn, reg.isd_keys, reg.profile.diversification)
    if reg.content is not None:
        _replace_content(db, se_id, reg.content)
    return se_id


def _domain_row(db: Session, se_id: str, aid: str) -> SecurityDomain | None:
    return db.execute(select(SecurityDomain).where(SecurityDomain.se_id == se_id,
                                                   SecurityDomain.aid == aid.upper())).scalar_one_or_none()


def _key_sets(db: Session, sd_id: int) -> list[SdKeySet]:
    return list(db.execute(select(SdKeySet).where(SdKeySet.sd_id == sd_id)).scalars())


def _record_key_set(db: Session, sd_id: int, kvn: int, keys: Sequence[str], diversification: str,
                    *, replaces: int | None = None) -> None:
    """The SD has key set `kvn`, now the one the TSM uses; key set `replaces` is no longer on the card."""
    found = False
    for existing in _key_sets(db, sd_id):
        if existing.kvn == kvn:
            existing.keys, existing.diversification, existing.active = " ".join(keys), diversification, True
            found = True
        elif existing.kvn == replaces:
            db.delete(existing)
        else:
            existing.active = False
    if not found:
        db.add(SdKeySet(sd_id=sd_id, kvn=kvn, keys=" ".join(keys), diversification=diversification, active=True,
                        created_at=now()))
    db.flush()


def se_row(db: Session, se_id: str) -> SecureElement:
    """The SE with this id, or NotFound."""
    row = db.get(SecureElement, se_id)
    if row is None:
        raise NotFound(f"no SE {se_id!r} in the registry (tsm se list)")
    return row


def show(tsm: Tsm, se_id: str) -> SeView:
    """What the registry holds about one SE, as far as the caller's tenancy reaches: an SE vendor sees its own
    SEs only; a service provider sees the ISD and its own SSDs and what is associated with them."""
    with tsm.sessions() as db:
        return se_view(db, se_id, tsm.scope)


def se_view(db: Session, se_id: str, scope: Scope = ISSUER) -> SeView:
    """`show` inside an open session."""
    row = se_row(db, se_id)
    vendor_row = db.get(Tenant, row.vendor_id) if row.vendor_id is not None else None
    if not scope.sees_se(se_id, vendor_row.name if vendor_row is not None else None):
        raise NotFound(f"no SE {se_id!r} in the registry (tsm se list)")
    profile = db.get(SeProfile, row.profile_id)
    assert profile is not None  # a foreign key
    vendor = vendor_row.name if vendor_row is not None else ""
    domains = []
    for sd in db.execute(select(SecurityDomain).where(SecurityDomain.se_id == se_id)
                         .order_by(SecurityDomain.id)).scalars():
        sp = db.get(Tenant, sd.sp_id).name if sd.sp_id is not None else ""  # type: ignore[union-attr]
        domains.append(DomainView.of(sd, sp, _key_sets(db, sd.id)))
    content = list(db.execute(select(CardEntry).where(CardEntry.se_id == se_id)).scalars())
    if scope.kind == "sp":
        domains = [d for d in domains if d.mode == "isd" or d.sp == scope.name]
        own = {d.aid for d in domains if d.mode != "isd"}
        content = [e for e in content if e.kind == "isd" or e.aid in own or e.associated_sd in own]
    return SeView.of(row, profile, vendor, tuple(domains), content)


@dataclass(frozen=True)
class SeSummary:
    """One line of `tsm se list`."""

    id: str
    profile: str
    device_kind: str
    vendor: str
    life_cycle: str
    domains: int
    seen: bool


def _cplc_field_is(name: str, value: str) -> ColumnElement[bool]:
    """The stored CPLC (42 bytes as hex) has field `name` equal to the hex `value` (its fixed offset: GPCS 2.3.1
    Annex H.6)."""
    try:
        offset, length = field_span(name)
    except KeyError:
        raise InvalidRequest(f"{name!r} is not a CPLC field (one of {', '.join(CPLC_FIELDS)})") from None
    if len(value) != 2 * length or not all(c in hexdigits for c in value):
        raise InvalidRequest(f"the CPLC field {name} is {length} bytes: {2 * length} hex digits")
    return func.substr(SecureElement.cplc, 2 * offset + 1, 2 * length) == value.upper()


def list_ses(tsm: Tsm, *, vendor: str | None = None, limit: int = 1000, after: str = "", se_id: str | None = None,
             cin: str | None = None, cplc: tuple[str, str] | None = None) -> list[SeSummary]:
    """SEs by id (only `se_id`, those with CIN `cin`, or those whose CPLC field `cplc[0]` is the hex `cplc[1]`,
    when given), `limit` at a time after id `after` (keyset paging: cheap with a million SEs); an SE vendor lists
    its own, a device its own, a service provider none (it reaches the SEs its users name)."""
    tsm.scope.only("issuer", "vendor", "device", action="listing SEs")
    if tsm.scope.kind == "vendor":
        vendor = tsm.scope.name
    query = (select(SecureElement, SeProfile.name).join(SeProfile, SeProfile.id == SecureElement.profile_id)
             .where(SecureElement.id > after).order_by(SecureElement.id).limit(limit))
    if tsm.scope.kind == "device":
        query = query.where(SecureElement.id == tsm.scope.name)
    if se_id is not None:
        query = query.where(SecureElement.id == se_id)
    if cin is not None:
        query = query.where(SecureElement.cin == cin.upper())
    if cplc is not None:
        query = query.where(_cplc_field_is(*cplc))
    with tsm.sessions() as db:
        if vendor is not None:
            query = query.where(SecureElement.vendor_id == tenant_row(db, vendor, "vendor").id)
        rows = db.execute(query).all()
        vendors = {t.id: t.name for t in db.execute(select(Tenant).where(Tenant.kind == "vendor")).scalars()}
        counts: dict[str, int] = {}
        ids = [r[0].id for r in rows]
        if ids:
            for sd_se in db.execute(select(SecurityDomain.se_id).where(SecurityDomain.se_id.in_(ids))).scalars():
                counts[sd_se] = counts.get(sd_se, 0) + 1
        return [SeSummary(se.id, name, se.device_kind, vendors.get(se.vendor_id or 0, ""), se.life_cycle,
                          counts.get(se.id, 0), se.seen_at is not None) for se, name in rows]


# ---- content as the card reported it ----------------------------------------------------------------------------


def _entry_row(se_id: str, kind: str, entry: StatusEntry) -> CardEntry:
    return CardEntry(se_id=se_id, aid=entry.aid.hex().upper(), kind=kind, life_cycle=entry.life_cycle,
                     privileges=entry.privileges.encode().hex().upper() if kind != "elf" else "",
                     associated_sd=(entry.associated_sd_aid or b"").hex().upper(),
                     elf_aid=(entry.elf_aid or b"").hex().upper(),
                     modules=" ".join(m.hex().upper() for m in entry.modules))


def _replace_content(db: Session, se_id: str, content: CardContent) -> None:
    db.execute(delete(CardEntry).where(CardEntry.se_id == se_id))
    rows = [_entry_row(se_id, "isd", e) for e in content.isd]
    rows += [_entry_row(se_id, "sd" if e.is_security_domain else "app", e) for e in content.applications]
    rows += [_entry_row(se_id, "elf", e) for e in content.load_files]
    db.add_all(rows)
    isd_state = content.isd[0].state.name if content.isd else ""
    if isd_state:
        se_row(db, se_id).life_cycle = isd_state
    for sd in db.execute(select(SecurityDomain).where(SecurityDomain.se_id == se_id)).scalars():
        seen = next((r for r in rows if r.aid == sd.aid), None)
        if seen is not None:
            sd.privileges = seen.privileges
            sd.life_cycle = f"{seen.life_cycle:02X}"


def record_content(tsm: Tsm, se_id: str, content: CardContent, *, free_nv: int | None = None,
                   free_volatile: int | None = None) -> None:
    """Replace the SE's content with what GET STATUS just showed; the card is the truth."""
    with tsm.transaction() as db:
        row = se_row(db, se_id)
        row.seen_at = now()
        if free_nv is not None:
            row.free_nv = free_nv
        if free_volatile is not None:
            row.free_volatile = free_volatile
        _replace_content(db, se_id, content)


# ---- security domains -------------------------------------------------------------------------------------------


def record_domain(tsm: Tsm, se_id: str, aid: str, *, sp: str, mode: str, parent_aid: str,
                  nv_quota: int | None = None, volatile_quota: int | None = None) -> None:
    """The SE has (the card showed) an SSD of `sp` in GP `mode`."""
    with tsm.transaction() as db:
        sp_row = tenant_row(db, sp, "sp")
        row = _domain_row(db, se_id, aid)
        if row is None:
            db.add(SecurityDomain(se_id=se_id, aid=aid.upper(), parent_aid=parent_aid.upper(), mode=mode,
                                  sp_id=sp_row.id, privileges="", life_cycle="", nv_quota=nv_quota,
                                  volatile_quota=volatile_quota))
        else:
            row.sp_id, row.mode, row.nv_quota, row.volatile_quota = sp_row.id, mode, nv_quota, volatile_quota


def forget_domain(tsm: Tsm, se_id: str, aid: str) -> None:
    """The card deleted SD `aid` (DELETE answered 9000): its registry row and key sets go."""
    with tsm.transaction() as db:
        sd = _domain_row(db, se_id, aid)
        if sd is not None:
            db.execute(delete(SdKeySet).where(SdKeySet.sd_id == sd.id))
            db.delete(sd)


def record_key_set(tsm: Tsm, se_id: str, sd_aid: str, kvn: int, keys: Sequence[str], diversification: str,
                   *, replaces: int | None = None) -> None:
    """The card confirmed key set `kvn` in the SD (PUT KEY answered with its KCVs, or INITIALIZE UPDATE opened
    it); key set `replaces` is gone from the card (PUT KEY replaced it, or it was the initial key set FF)."""
    with tsm.transaction() as db:
        sd = _domain_row(db, se_id, sd_aid)
        if sd is None:
            raise NotFound(f"SE {se_id} has no security domain {sd_aid} in the registry")
        _record_key_set(db, sd.id, kvn, keys, diversification, replaces=replaces)
        if sd.mode == "isd":
            se = se_row(db, se_id)
            se.isd_key, se.isd_kvn = " ".join(keys), kvn


class ReplayedReceipt(Conflict):
    """A DM receipt whose confirmation counter is not above the last one this SE gave: a replayed receipt."""

    code = "receipt_replayed"


def record_receipt(tsm: Tsm, se_id: str, counter: int) -> None:
    """A verified receipt's confirmation counter: it must grow with every receipt the card gives (§C.5)."""
    with tsm.transaction() as db:
        row = se_row(db, se_id)
        if counter <= row.confirmation_counter:
            raise ReplayedReceipt(f"SE {se_id} confirmed with counter {counter:04X}, not above its last "
                                  f"{row.confirmation_counter:04X}: a replayed receipt")
        row.confirmation_counter = counter
