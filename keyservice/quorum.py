"""The quorum M of each class of privileged operation, and of single keys (`KeyService.quorum`; issue 11).

Defaults: 1 on a lab token (`tsm init --test-token`), 2 on a production token, which never goes below 2. A key
label may have its own M; the stricter of the class's and the key's applies. N is the number of active people
eligible to approve (officers). A change is itself a privileged operation (class `quorum-change`, approved at the
quorum in force). Rows are signed by the audit key and bound to the audit record that wrote them: a row changed,
deleted or put back from a backup is refused (QuorumRecordForged), so a database administrator cannot lower M.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyservice import operations
from keyservice.core import Core
from keyservice.errors import InvalidInput, KeyServiceError, QuorumRecordForged
from keyservice.hsm import TEST_TOKEN_MARKER
from keyservice.operations import OpClass, OperationSpec
from keyservice.people import People, Role
from keyservice.people_models import QuorumRecord
from keyservice.policy import Operation, Request, check_officer

if TYPE_CHECKING:
    from keyservice.approvals import ApprovalSet

QUORUM_DOMAIN: Final = b"tsm.quorum.v1\x00"
LAB_DEFAULT: Final = 1
PRODUCTION_DEFAULT: Final = 2
PRODUCTION_MIN: Final = 2
M_MAX: Final = 16
LABEL_SCOPE: Final = "label:"
WRITERS: Final = frozenset({Operation.QUORUM_CHANGE.value})


@dataclass(frozen=True)
class QuorumView:
    """The M in force for one scope, where it comes from, and N."""

    scope: str
    m: int
    n: int
    source: str
    """`default`, or who set it."""


def quorum_encoding(row: QuorumRecord) -> bytes:
    """Canonical encoding of a quorum row but its MAC."""
    body = {"scope": row.scope, "m": row.m, "set_by": row.set_by, "set_at": row.set_at, "audit_seq": row.audit_seq}
    return QUORUM_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_scope(scope: str) -> str:
    """An operation class (`key-generate`, ...) or `label:NAME` (InvalidInput otherwise)."""
    if scope.startswith(LABEL_SCOPE) and 0 < len(scope) - len(LABEL_SCOPE) <= 128 and scope.isprintable():
        return scope
    if scope in {c.value for c in OpClass}:
        return scope
    raise InvalidInput(f"a quorum scope is an operation class ({', '.join(c.value for c in OpClass)}) or "
                       "label:NAME")


class Quorum:
    """Read and change the quorum settings."""

    def __init__(self, core: Callable[[], Core], people: People, clock: Callable[[], float]) -> None:
        self._core = core
        self._people = people
        self._clock = clock
        self._lab: bool | None = None

    def lab_token(self) -> bool:
        """Whether the token is a lab (test) token: fixed when the token was created, so asked once."""
        if self._lab is None:
            self._lab = self._core().hsm.has_marker(TEST_TOKEN_MARKER)
        return self._lab

    def default(self) -> int:
        """M where nothing was set: LAB_DEFAULT on a lab token, PRODUCTION_DEFAULT otherwise."""
        return LAB_DEFAULT if self.lab_token() else PRODUCTION_DEFAULT

    def _row(self, core: Core, db: Session, scope: str) -> QuorumRecord | None:
        """The signed row of `scope`, or None when none was ever set (QuorumRecordForged otherwise)."""
        row = db.get(QuorumRecord, scope)
        last = core.signer.last_written(db, f"quorum:{scope}", WRITERS)
        if row is None:
            if last:
                raise QuorumRecordForged(f"the quorum of {scope} was set (audit record {last}) but its row is gone")
            return None
        if not hmac.compare_digest(core.signer.mac(quorum_encoding(row)), row.mac) or row.audit_seq != last:
            raise QuorumRecordForged(f"the quorum row of {scope} is not the one the key service signed last")
        return row

    def _m(self, scope: str) -> tuple[int, str]:
        core = self._core()
        with core.sessions() as db:
            row = self._row(core, db, scope)
        return (row.m, row.set_by) if row is not None else (self.default(), "default")

    def required(self, spec: OperationSpec) -> int:
        """M for this call: the class's, or the key's when stricter."""
        m = self._m(spec.op_class.value)[0]
        if spec.label is not None:
            m = max(m, self._m(LABEL_SCOPE + spec.label)[0])
        return m

    def show(self) -> list[QuorumView]:
        """Every class, and every key with its own M."""
        core = self._core()
        n = len(self._people.eligible(frozenset({Role.OFFICER})))
        with core.sessions() as db:
            labels = [s for s in db.execute(select(QuorumRecord.scope)).scalars() if s.startswith(LABEL_SCOPE)]
        views = []
        for scope in [*(c.value for c in OpClass), *sorted(labels)]:
            m, source = self._m(scope)
            views.append(QuorumView(scope, m, n, source))
        return views

    def set(self, req: Request, scope: str, m: int, approvals: ApprovalSet | None = None) -> QuorumView:
        """Set M for a class or a key: a privileged operation (class quorum-change). M is at least 1 (2 on a
        production token) and at most the number of active officers."""
        core = self._core()
        scope = parse_scope(scope)
        if approvals is not None:
            req = replace(req, approvals=approvals)
        req = replace(req, target=f"quorum:{scope}")
        n = len(self._people.eligible(frozenset({Role.OFFICER})))
        floor = LAB_DEFAULT if self.lab_token() else PRODUCTION_MIN
        try:
            check_officer(req, Operation.QUORUM_CHANGE)
            if not floor <= m <= M_MAX:
                raise InvalidInput(f"a quorum M is {floor} to {M_MAX} on this token")
            if m > max(n, floor):
                raise InvalidInput(f"a quorum of {m} cannot be reached: {n} active officer(s)")
        except KeyServiceError as exc:
            raise core.refuse(req, Operation.QUORUM_CHANGE, [], exc) from None
        clearance = core.clear(req, operations.quorum_change(scope, m), [])
        with core.audited(req, Operation.QUORUM_CHANGE, [], f"m={m}", clearance) as txn:
            row = txn.db.get(QuorumRecord, scope) or QuorumRecord(scope=scope)
            row.m, row.set_by, row.set_at, row.audit_seq = m, str(req.caller), self._clock(), txn.seq
            row.mac = core.signer.mac(quorum_encoding(row))
            txn.db.add(row)
        return QuorumView(scope, m, n, str(req.caller))
