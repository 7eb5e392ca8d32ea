"""The phone relay's meeting point, in the database (docs/relay.md, "Sessions" and "Timers"): the TSM side (the
job's `RelayTransport`, in any process) queues a batch and polls for its answer; the HTTP side (any web worker)
takes the phone's request, records its report, and answers the next batch, WAIT, or the cached answer of a
repeated request. Every state change is one short transaction that starts by writing the session's row, so
that concurrent requests of one session are serialised by the database (PostgreSQL's row lock, SQLite's write
lock) and a batch is delivered in exactly one answer. Waiting is polling with short sleeps (`POLL_TICK`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from tsm_core.transport.errors import (
    RelayProtocolError,
    RelaySessionClosed,
    RelaySessionExpired,
    RelaySessionForeign,
    RelaySessionIdInvalid,
    RelaySessionNotFound,
    RelayTimeout,
)
from tsm_core.transport.relay_models import RelayExchange, RelaySessionRow
from tsm_core.transport.relay_wire import (
    Action,
    Batch,
    Command,
    Directive,
    PhoneRequest,
    PhoneStatus,
    check_report,
    check_session_id,
    directive_document,
    rfc3339,
)

DEFAULT_TTL: Final = 300.0
"""Seconds a session lives."""
POLL_TICK: Final = 0.05
"""Seconds between two looks at the database of a waiting side (the job for an answer, a held request for a
batch)."""
GRACE: Final = 60.0
"""Seconds a closed or expired session is kept (so the phone learns `relay_session_closed`) before `purge`."""
OPEN, CLOSED = "open", "closed"
QUEUED, DELIVERED, ANSWERED, ABANDONED = "queued", "delivered", "answered", "abandoned"


@dataclass(frozen=True)
class RelaySession:
    """An open session: its id (a bearer secret, known only to its opener), its SE and expiry (epoch s)."""

    session_id: str
    se_id: str
    expires_at: float


@dataclass(frozen=True)
class Binding:
    """What a session is bound to: its SE, the operation (job) it serves and the device it was opened for
    (empty: the session id is the only credential)."""

    se_id: str
    job_id: str | None
    device_id: str


@dataclass(frozen=True)
class Report:
    """The phone's report on one batch."""

    status: PhoneStatus
    responses: tuple[bytes, ...]
    detail: str


def token_hash(session_id: str) -> str:
    """How a session id is stored: SHA-256, hex."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite gives naive UTC back


def _batch_of(row: RelayExchange, se_id: str) -> Batch:
    commands = tuple(Command(bytes.fromhex(c["apdu"]), tuple(c["expect"])) for c in json.loads(row.commands))
    return Batch(se_id, None if row.target_aid is None else bytes.fromhex(row.target_aid), commands)


class RelayStore:
    """Relay sessions in the database behind `sessions`; `clock` gives the wall time (epoch s) of expiries."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], float] = time.time) -> None:
        self._sessions = sessions
        self._clock = clock

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The database the sessions live in."""
        return self._sessions

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    @contextmanager
    def _locked(self, session_id: str) -> Iterator[tuple[Session, RelaySessionRow]]:
        """A transaction that first writes the session's row (taking its lock), and the row."""
        digest = token_hash(session_id)
        with self._sessions() as db, db.begin():
            locked = db.execute(update(RelaySessionRow).where(RelaySessionRow.token_hash == digest)
                                .values(next_batch=RelaySessionRow.next_batch))
            row = db.scalars(select(RelaySessionRow).where(RelaySessionRow.token_hash == digest)).one_or_none()
            if locked.rowcount == 0 or row is None:  # type: ignore[attr-defined]
                raise RelaySessionNotFound("no such relay session")
            yield db, row

    def _read(self, session_id: str) -> RelaySessionRow:
        with self._sessions() as db:
            row = db.scalars(select(RelaySessionRow).where(RelaySessionRow.token_hash == token_hash(session_id))
                             ).one_or_none()
        if row is None:
            raise RelaySessionNotFound("no such relay session")
        return row

    def _live(self, row: RelaySessionRow, se_id: str | None = None) -> RelaySessionRow:
        if row.state == CLOSED:
            raise RelaySessionClosed("the relay session is closed")
        if self._now() >= _aware(row.expires_at):
            raise RelaySessionExpired(f"the relay session expired at {rfc3339(_aware(row.expires_at).timestamp())}")
        if se_id is not None and row.se_id != se_id:
            raise RelaySessionForeign(f"the relay session is bound to SE {row.se_id!r}, not {se_id!r}")
        return row

    # --- the session's life, for the TSM side ---

    def open_session(self, se_id: str, ttl: float = DEFAULT_TTL, *, session_id: str | None = None,
                     job_id: str | None = None, device_id: str = "") -> RelaySession:
        """A new session for `se_id` (and the job it serves), valid for `ttl` seconds; its id is random (24
        characters) unless the caller gives one (`check_session_id`, not one of an open session: a closed or
        expired session of that id is replaced). Purges old sessions."""
        chosen = secrets.token_urlsafe(18) if session_id is None else check_session_id(session_id)
        self.purge()
        now = self._now()
        with self._sessions() as db, db.begin():
            old = db.scalars(select(RelaySessionRow).where(RelaySessionRow.token_hash == token_hash(chosen))
                             ).one_or_none()
            if old is not None:
                if old.state == OPEN and now < _aware(old.expires_at):
                    raise RelaySessionIdInvalid("this relay session id is already in use: choose another")
                db.execute(delete(RelayExchange).where(RelayExchange.session_id == old.id))
                db.delete(old)
                db.flush()
            db.add(RelaySessionRow(token_hash=token_hash(chosen), se_id=se_id, job_id=job_id, device_id=device_id,
                                   state=OPEN, created_at=now, expires_at=now + timedelta(seconds=ttl)))
        return RelaySession(chosen, se_id, (now + timedelta(seconds=ttl)).timestamp())

    def close_session(self, session_id: str) -> None:
        """End a session and drop its exchanges: the phone's next request gets `relay_session_closed`."""
        with self._locked(session_id) as (db, row):
            if row.state != CLOSED:
                row.state, row.closed_at, row.answer = CLOSED, self._now(), ""
            db.execute(delete(RelayExchange).where(RelayExchange.session_id == row.id))

    def purge(self) -> int:
        """Delete the sessions closed or expired more than `GRACE` seconds ago, with their exchanges; how many."""
        cutoff = self._now() - timedelta(seconds=GRACE)
        with self._sessions() as db, db.begin():
            old = select(RelaySessionRow.id).where(
                (RelaySessionRow.expires_at < cutoff)
                | ((RelaySessionRow.state == CLOSED) & (RelaySessionRow.closed_at < cutoff)))
            ids = list(db.scalars(old))
            if ids:
                db.execute(delete(RelayExchange).where(RelayExchange.session_id.in_(ids)))
                db.execute(delete(RelaySessionRow).where(RelaySessionRow.id.in_(ids)))
        return len(ids)

    def wait_told_closed(self, session_id: str, timeout: float) -> bool:
        """After `close_session`: wait until the phone was answered `relay_session_closed`, at most `timeout`
        seconds; True at once if the phone never made a request."""
        deadline = time.monotonic() + timeout
        while True:
            row = self._read(session_id)
            if not row.contacted or row.told_closed:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_TICK)

    def session(self, session_id: str, se_id: str) -> RelaySession:
        """The live session `session_id`, checked to be bound to `se_id`."""
        row = self._live(self._read(session_id), se_id)
        return RelaySession(session_id, row.se_id, _aware(row.expires_at).timestamp())

    def binding(self, session_id: str) -> Binding:
        """What the session `session_id` is bound to (`RelaySessionNotFound` for an unknown one)."""
        row = self._read(session_id)
        return Binding(row.se_id, row.job_id, row.device_id)

    def atr(self, session_id: str) -> bytes:
        """The ATR the phone reported last (empty before its first report)."""
        return bytes.fromhex(self._read(session_id).atr)

    # --- the TSM side, called by RelayTransport ---

    def submit(self, session_id: str, se_id: str, aid: bytes | None, commands: Sequence[Command]) -> int:
        """Queue a batch for the phone (target `aid`, None: the channel open); its number. One at a time."""
        with self._locked(session_id) as (db, row):
            self._live(row, se_id)
            pending = select(RelayExchange.id).where(RelayExchange.session_id == row.id,
                                                     RelayExchange.state.in_((QUEUED, DELIVERED)))
            if db.scalar(pending) is not None:
                raise RelayProtocolError("a batch of this session is still pending")
            number, row.next_batch = row.next_batch, row.next_batch + 1
            db.add(RelayExchange(session_id=row.id, batch=number, state=QUEUED, created_at=self._now(),
                                 target_aid=None if aid is None else aid.hex().upper(),
                                 commands=json.dumps([{"apdu": c.apdu.hex().upper(), "expect": list(c.expect)}
                                                      for c in commands])))
        return number

    def wait(self, session_id: str, batch: int, timeout: float) -> Report:
        """The phone's report on `batch`, within `timeout` seconds of now, and of the session's opening while the
        phone has not made a request (so a job with no phone fails after `timeout`, not once per batch);
        `RelayTimeout` otherwise, and the batch is never delivered later."""
        deadline = time.monotonic() + timeout
        while True:
            row = self._live(self._read(session_id))
            with self._sessions() as db:
                exchange = db.scalars(select(RelayExchange).where(RelayExchange.session_id == row.id,
                                                                  RelayExchange.batch == batch)).one_or_none()
            if exchange is not None and exchange.state == ANSWERED:
                with self._sessions() as db, db.begin():
                    db.execute(delete(RelayExchange).where(RelayExchange.id == exchange.id))
                responses = tuple(bytes.fromhex(r) for r in json.loads(exchange.responses))
                return Report(PhoneStatus(exchange.status), responses, exchange.detail)
            silent = not row.contacted and self._now() >= _aware(row.created_at) + timedelta(seconds=timeout)
            if exchange is None or silent or time.monotonic() >= deadline:
                self._abandon(session_id, batch)
                why = "no phone contacted the session" if silent else f"no answer to batch {batch}"
                raise RelayTimeout(f"{why} within {timeout:g} s")
            time.sleep(POLL_TICK)

    def _abandon(self, session_id: str, batch: int) -> None:
        with self._locked(session_id) as (db, row):
            db.execute(delete(RelayExchange).where(RelayExchange.session_id == row.id, RelayExchange.batch == batch,
                                                   RelayExchange.state.in_((QUEUED, ANSWERED))))
            db.execute(update(RelayExchange).where(RelayExchange.session_id == row.id, RelayExchange.batch == batch)
                       .values(state=ABANDONED, commands="[]"))

    # --- the phone side, called by the HTTP endpoint ---

    def exchange(self, session_id: str, request: PhoneRequest, long_poll: float) -> dict[str, Any]:
        """The answer document to the phone's `request`: the cached one if this `seq` was answered, else (after
        taking its report) the next batch, held up to `long_poll` seconds for one to be queued, else WAIT."""
        deadline = time.monotonic() + long_poll
        while True:
            answer = self._step(session_id, request, final=time.monotonic() >= deadline)
            if answer is not None:
                return answer
            self._idle_until_news(session_id, request.seq, deadline)

    def _idle_until_news(self, session_id: str, seq: int, deadline: float) -> None:
        """Sleep (read-only looks) until a batch is queued, `seq` was answered elsewhere, the session changed, or
        `deadline`."""
        while time.monotonic() < deadline:
            time.sleep(POLL_TICK)
            row = self._read(session_id)
            if row.state != OPEN or row.answered_seq >= seq or self._now() >= _aware(row.expires_at):
                return
            with self._sessions() as db:
                queued = db.scalar(select(RelayExchange.id).where(RelayExchange.session_id == row.id,
                                                                  RelayExchange.state == QUEUED))
            if queued is not None:
                return

    def _step(self, session_id: str, request: PhoneRequest, *, final: bool) -> dict[str, Any] | None:
        closed = False
        with self._locked(session_id) as (db, row):
            row.contacted = True
            if row.state == CLOSED:
                row.told_closed = closed = True
            else:
                self._live(row)
                if request.seq == row.answered_seq and row.answer:
                    return dict(json.loads(row.answer))
                if request.seq != row.answered_seq + 1:
                    raise RelayProtocolError(f"request seq {request.seq} out of order: the last one answered is "
                                             f"{row.answered_seq}")
                if row.reported_seq < request.seq:
                    self._take_report(db, row, request)
                answer = self._answer(db, row, request.seq, final=final)
                if answer is not None:
                    row.answered_seq, row.answer = request.seq, json.dumps(answer)
                return answer
        if closed:  # committed above: the phone is being told
            raise RelaySessionClosed("the relay session is closed")
        return None

    def _take_report(self, db: Session, row: RelaySessionRow, request: PhoneRequest) -> None:
        """Record the report of request `seq` on the batch delivered in answer to `seq - 1`."""
        exchange = db.scalars(select(RelayExchange).where(RelayExchange.session_id == row.id,
                                                          RelayExchange.delivered_seq == request.seq - 1)
                              ).one_or_none()
        if exchange is None and request.status != PhoneStatus.POLLING:
            raise RelayProtocolError(f"request seq {request.seq} reports on a batch, but the answer to seq "
                                     f"{request.seq - 1} carried none")
        if exchange is not None:
            if request.status == PhoneStatus.POLLING:
                raise RelayProtocolError(f"request seq {request.seq} must report on the batch of seq "
                                         f"{request.seq - 1}")
            check_report(request, _batch_of(exchange, row.se_id))
            if exchange.state == ABANDONED:
                db.delete(exchange)  # the TSM side gave up on it: the report is dropped
            else:
                exchange.state, exchange.status = ANSWERED, request.status.value
                exchange.responses = json.dumps([r.hex().upper() for r in request.responses])
                exchange.detail, exchange.commands = request.detail, "[]"
        if request.atr:
            row.atr = request.atr.hex().upper()
        row.reported_seq = request.seq

    def _answer(self, db: Session, row: RelaySessionRow, seq: int, *, final: bool) -> dict[str, Any] | None:
        expires = _aware(row.expires_at).timestamp()
        queued = db.scalars(select(RelayExchange).where(RelayExchange.session_id == row.id,
                                                        RelayExchange.state == QUEUED)
                            .order_by(RelayExchange.batch).limit(1)).one_or_none()
        if queued is not None:
            queued.state, queued.delivered_seq = DELIVERED, seq
            return directive_document(Directive(seq, Action.EXECUTE, expires, _batch_of(queued, row.se_id)))
        return directive_document(Directive(seq, Action.WAIT, expires)) if final else None
