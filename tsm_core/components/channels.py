"""Secure channels for TSM components: opened from a card's INITIALIZE UPDATE answer, then used call by call by
whichever worker serves the call (docs/api.md, "Key service").

A channel handle is a row (tsm_core/components/models.py) bound to its component, SE and purpose. Each call loads
it, has the key service resume the channel (`KeyService.channels.resume`: policy checked for the static keys, the
session keys derived again in the HSM from the stored challenges and sequence counter, one audit record), does the
one thing asked and saves the new chaining values and counters, ordered by the row's `version`: of two calls on one
channel at once, the second answers 409 `channel_busy` and its result is discarded. No session key is stored, and
none is kept between calls, so no worker affinity is needed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, insert, select, update

from globalplatform import initupdate
from globalplatform.initupdate import HOST_CHALLENGE_LENGTH
from globalplatform.scp import Scp, SecurityLevel
from keyservice.channels import ChannelSession, ChannelSpec, ChannelState, DivMethod
from keyservice.policy import Purpose
from tsm_core.components.models import KeyChannel
from tsm_core.components.service import Component
from tsm_core.context import now
from tsm_core.errors import Conflict, InvalidRequest, NotFound
from tsm_core.flows.errors import WrongCard
from tsm_core.registry.models import SdKeySet, SecureElement, SecurityDomain, SeProfile

_TABLE: Final = cast(Table, KeyChannel.__table__)
_BY_ID: Final = select(_TABLE).where(_TABLE.c.id == bindparam("id"))
IDLE: Final = timedelta(minutes=10)
"""A channel not used for this long is gone (a card drops its channel far sooner)."""
INITIALIZING: Final = "initializing"
OPEN: Final = "open"
T = TypeVar("T")


class ChannelBusy(Conflict):
    """Another call on the same channel changed its counters first; this call's result was discarded."""

    code = "channel_busy"


class ChannelNotOpen(Conflict):
    """The channel awaits the card's INITIALIZE UPDATE answer (or has it already)."""

    code = "channel_not_open"


@dataclass(frozen=True)
class ChannelRequest:
    """What opens a channel: the SE, its SD (default: the ISD) and key version (default: the active key set)."""

    se_id: str
    purpose: Purpose
    sd_aid: str | None = None
    kvn: int | None = None
    security_level: int = SecurityLevel.C_MAC
    host_challenge: bytes | None = None
    card_response: bytes | None = None


@dataclass(frozen=True)
class ChannelView:
    """A channel handle as the API shows it (never a key)."""

    id: str
    se_id: str
    sd_aid: str
    kvn: int
    purpose: str
    state: str
    scp: str
    security_level: int
    expires_at: datetime
    initialize_update: bytes = b""
    external_authenticate: bytes = b""


def _view(row: KeyChannel, **apdus: bytes) -> ChannelView:
    return ChannelView(row.id, row.se_id, row.sd_aid, row.kvn, row.purpose, row.state, row.scp, row.security_level,
                       row.expires_at, **apdus)


def _spec(row: KeyChannel) -> ChannelSpec:
    method = None if row.diversification in ("", "none") else DivMethod(row.diversification)
    return ChannelSpec(tuple(row.keys.split()), method, row.security_level, row.kvn, row.i, bytes.fromhex(row.sd_aid))


def _state(row: KeyChannel) -> ChannelState:
    return ChannelState(row.kvn, row.i, bytes.fromhex(row.host_challenge), bytes.fromhex(row.card_challenge),
                        bytes.fromhex(row.sequence_counter), bytes.fromhex(row.kdd), bytes.fromhex(row.chaining),
                        bytes.fromhex(row.r_chaining), row.counter, bytes.fromhex(row.rmac_command))


def _saved(state: ChannelState) -> dict[str, object]:
    return {"kvn": state.kvn, "card_challenge": state.card_challenge.hex(),
            "sequence_counter": state.sequence_counter.hex(), "kdd": state.kdd.hex(), "chaining": state.chaining.hex(),
            "r_chaining": state.r_chaining.hex(), "counter": state.counter, "rmac_command": state.rmac_command.hex()}


_SD_KEYS: Final = (select(SecureElement.kdd, SeProfile.i, SeProfile.isd_aid, SecurityDomain.aid, SdKeySet.kvn,
                          SdKeySet.keys, SdKeySet.diversification, SdKeySet.active)
                   .join(SeProfile, SeProfile.id == SecureElement.profile_id)
                   .join(SecurityDomain, SecurityDomain.se_id == SecureElement.id)
                   .join(SdKeySet, SdKeySet.sd_id == SecurityDomain.id)
                   .where(SecureElement.id == bindparam("se_id")))
"""Every key set of the SE's domains with what a channel needs, in one round trip (a hot path)."""


def _new_row(component: Component, want: ChannelRequest) -> tuple[KeyChannel, str]:
    """The channel row for the SE's key set (not yet stored) and the SE's KDD."""
    if not component.tsm.scope.sees_se(want.se_id, None):
        raise NotFound(f"no SE {want.se_id!r} in the registry")
    with component.tsm.sessions() as db:
        found = db.execute(_SD_KEYS, {"se_id": want.se_id}).all()
    if not found:
        raise NotFound(f"no SE {want.se_id!r} in the registry, or no key set on it")
    aid = (want.sd_aid or found[0].isd_aid).upper()
    sets = [r for r in found if r.aid == aid and (r.kvn == want.kvn if want.kvn is not None else r.active)]
    if not sets:
        raise NotFound(f"SE {want.se_id} has no " + (f"key set {want.kvn:02X}" if want.kvn is not None else
                                                      "active key set") + f" on security domain {aid}")
    key_set, at = sets[0], now()
    row = KeyChannel(id=secrets.token_hex(16), owner=str(component.tsm.scope), purpose=want.purpose.value,
                     se_id=want.se_id, sd_aid=aid, kvn=key_set.kvn, keys=key_set.keys,
                     diversification=key_set.diversification, scp="", security_level=want.security_level,
                     i=key_set.i, state=INITIALIZING, host_challenge="", card_challenge="", sequence_counter="",
                     kdd="", chaining="", r_chaining="", counter=0, rmac_command="", version=0, created_at=at,
                     expires_at=at + IDLE)
    return row, key_set.kdd


def _check_card(response: bytes, kdd: str) -> Scp:
    """The card's answer is from this SE (its KDD); the SCP it names."""
    parsed = initupdate.parse(response)
    if parsed.kdd.hex().upper() != kdd.upper():
        raise WrongCard(f"the INITIALIZE UPDATE answer names KDD {parsed.kdd.hex().upper()}, not this SE's")
    return Scp(f"{parsed.scp:02X}")


def _authenticate(component: Component, row: KeyChannel, card_response: bytes, kdd: str) -> bytes:
    """Verify the card cryptogram, fill the row with the open channel's state; the EXTERNAL AUTHENTICATE."""
    scp = _check_card(card_response, kdd)
    req = component.request(Purpose(row.purpose), row.se_id)
    with component.tsm.keys.channels.open(req, _spec(row)) as session:
        session.initialize_update(bytes.fromhex(row.host_challenge))
        command = session.authenticate(card_response)
        for name, value in _saved(session.snapshot()).items():
            setattr(row, name, value)
    row.scp, row.state = scp.value, OPEN
    return command


def open_channel(component: Component, want: ChannelRequest) -> ChannelView:
    """A channel handle: with the card's answer, authenticated at once (EXTERNAL AUTHENTICATE in the view); without,
    the INITIALIZE UPDATE to send (random host challenge unless given), then `authenticate`."""
    req = component.request(want.purpose, want.se_id)
    if want.host_challenge is not None and len(want.host_challenge) != HOST_CHALLENGE_LENGTH:
        raise InvalidRequest(f"the host challenge is {HOST_CHALLENGE_LENGTH} bytes, not {len(want.host_challenge)}")
    if want.card_response is not None and want.host_challenge is None:
        raise InvalidRequest("the card's answer goes with the host challenge its INITIALIZE UPDATE carried")
    row, kdd = _new_row(component, want)
    challenge = want.host_challenge or secrets.token_bytes(HOST_CHALLENGE_LENGTH)
    row.host_challenge = challenge.hex()
    apdus: dict[str, bytes] = {}
    if want.card_response is None:
        with component.tsm.keys.channels.open(req, _spec(row)) as session:  # policy checked (and audited) now
            apdus["initialize_update"] = session.initialize_update(challenge)
    else:
        apdus["external_authenticate"] = _authenticate(component, row, want.card_response, kdd)
    values = {c.name: getattr(row, c.name) for c in _TABLE.columns}
    with component.tsm.transaction() as db:
        db.execute(delete(KeyChannel).where(KeyChannel.expires_at < row.created_at))
        db.execute(insert(_TABLE), values)
    return _view(row, **apdus)


def _row(component: Component, channel_id: str) -> KeyChannel:
    """The component's live channel `channel_id` (NotFound for another's or an expired one)."""
    with component.tsm.sessions() as db:
        found = db.execute(_BY_ID, {"id": channel_id}).first()
    row = KeyChannel(**found._mapping) if found is not None else None
    if row is None or row.owner != str(component.tsm.scope) or row.expires_at.replace(tzinfo=UTC) < now():
        raise NotFound(f"no channel {channel_id!r} (expired, closed or never opened)")
    return row


def _save(component: Component, row: KeyChannel, values: dict[str, object]) -> None:
    """Store the channel's new state unless another call did first (ChannelBusy)."""
    with component.tsm.transaction() as db:
        done = db.execute(update(KeyChannel).where(KeyChannel.id == row.id, KeyChannel.version == row.version)
                          .values(**values, version=row.version + 1, expires_at=now() + IDLE))
        if cast(CursorResult[Any], done).rowcount != 1:
            raise ChannelBusy("another call on this channel came first; send this one again with its new state")


def authenticate(component: Component, channel_id: str, card_response: bytes) -> ChannelView:
    """The EXTERNAL AUTHENTICATE for the card's answer to the channel's INITIALIZE UPDATE."""
    row = _row(component, channel_id)
    if row.state != INITIALIZING:
        raise ChannelNotOpen("this channel is authenticated already")
    with component.tsm.sessions() as db:
        se = db.get(SecureElement, row.se_id)
        kdd = se.kdd if se is not None else ""
    command = _authenticate(component, row, card_response, kdd)
    _save(component, row, {**_saved(_state(row)), "scp": row.scp, "state": OPEN})
    return _view(row, external_authenticate=command)


def use(component: Component, channel_id: str, work: Callable[[ChannelSession], T]) -> T:
    """Run `work` on the resumed channel and save what it changed (wrap, unwrap, PUT KEY, encrypted DGIs)."""
    row = _row(component, channel_id)
    if row.state != OPEN:
        raise ChannelNotOpen("this channel awaits the card's answer to INITIALIZE UPDATE (authenticate)")
    req = component.request(Purpose(row.purpose), row.se_id)
    with component.tsm.keys.channels.resume(req, _spec(row), Scp(row.scp), _state(row)) as session:
        out = work(session)
        after = session.snapshot()
    if after != _state(row):
        _save(component, row, _saved(after))
    return out


def close(component: Component, channel_id: str) -> None:
    """Forget the channel (the card's side ends with a SELECT or a reset)."""
    row = _row(component, channel_id)
    with component.tsm.transaction() as db:
        db.execute(delete(KeyChannel).where(KeyChannel.id == row.id))
