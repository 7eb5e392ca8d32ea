"""The ceremony service: the operations of `tsm ceremony` for every front end (the CLI, the web app).

Each operation authenticates the person acting (password + current TOTP code, `KeyService.people`) on every call,
then runs the ceremony runtime (ceremonies/runtime.py). An approval is authenticated by the key service itself at
the moment it is given. The front end provides `caller_of` (only tsm/ and web/ create key-service callers), the
rollout `planner` of key rotations (the TSM core), and tests a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from ceremonies import evidence
from ceremonies.actions import Planner
from ceremonies.definitions import Definition
from ceremonies.errors import EvidenceMismatch
from ceremonies.models import Ceremony
from ceremonies.runtime import Runtime
from ceremonies.views import CeremonyView, Person, SignResult
from keyservice.identity import Caller
from keyservice.people import Credentials
from keyservice.policy import Purpose, Request
from keyservice.service import KeyService

CallerOf = Callable[[str, str], Caller]
"""(name, enrolled role) -> the key-service caller of an authenticated person (from the edge)."""


class CeremonyService:
    """Ceremonies for authenticated people."""

    def __init__(self, ks: KeyService, sessions: sessionmaker[Session], caller_of: CallerOf, *,
                 clock: Callable[[], datetime] | None = None, planner: Planner | None = None) -> None:
        self.ks, self.sessions, self.caller_of = ks, sessions, caller_of
        self.clock = clock or (lambda: datetime.fromtimestamp(ks.clock(), UTC))
        self.runtime = Runtime(ks, sessions, clock=self.clock, planner=planner)

    def person(self, name: str, creds: Credentials) -> Person:
        """Authenticate `name` now (password + TOTP, each code accepted once)."""
        who = self.ks.people.authenticate(name, creds, now=self.clock().timestamp())
        return Person(who.name, who.role.value, self.caller_of(who.name, who.role.value))

    @staticmethod
    def types() -> list[Definition]:
        return Runtime.types()

    def list(self) -> list[CeremonyView]:
        return self.runtime.list_ceremonies()

    def show(self, cid: str) -> CeremonyView:
        return self.runtime.show(cid)

    def start(self, kind: str, params: dict[str, str], name: str, creds: Credentials) -> CeremonyView:
        return self.runtime.start(self.person(name, creds), kind, params)

    def join(self, cid: str, role: str, name: str, creds: Credentials) -> CeremonyView:
        return self.runtime.join(cid, self.person(name, creds), role)

    def sign(self, cid: str, step: int, name: str, creds: Credentials,
             inputs: dict[str, str] | None = None) -> SignResult:
        return self.runtime.sign(cid, step, self.person(name, creds), inputs)

    def approve(self, cid: str, name: str, creds: Credentials) -> CeremonyView:
        return self.runtime.approve(cid, name, creds)

    def abort(self, cid: str, reason: str, name: str, creds: Credentials) -> CeremonyView:
        return self.runtime.abort(cid, self.person(name, creds), reason)

    def export(self, cid: str, caller: Caller) -> tuple[str, str]:
        """The transcript as JSON and as printable HTML; its SHA-256 anchored in the audit chain first."""
        body = evidence.transcript(self.runtime.show(cid))
        sha256 = evidence.digest(body)
        seq = self.ks.audit.anchor_evidence(Request(caller, Purpose.AUDIT, cid), sha256)
        with self.sessions() as db, db.begin():
            row = db.get(Ceremony, cid)
            if row is not None:
                row.evidence_sha256 = sha256
        return evidence.document(body, sha256, seq), evidence.printable(body, sha256)

    def verify(self, text: str) -> str:
        """Check an exported transcript: intact, and its hash anchored for its ceremony in a chain that verifies
        (EvidenceMismatch, AuditChainBroken); returns the ceremony id."""
        body, sha256 = evidence.read(text)
        self.ks.audit.verify()
        anchored = {r.detail for r in self.ks.audit.evidence(str(body["id"]))}
        if f"sha256={sha256}" not in anchored:
            raise EvidenceMismatch(f"no audit record anchors this transcript of {body['id']}")
        return str(body["id"])
