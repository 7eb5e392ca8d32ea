"""The key service: the one barrier every key operation passes (ARCHITECTURE.md; HashiCorp Vault's barrier).

A `KeyService` starts sealed: every call raises ServiceSealed until `unseal` has logged in to the token with
the PIN. Its work is split by purpose into sub-facades, each call of which checks policy before the HSM is
touched and writes one audit record before a result leaves (a refused or failed call is audited too):

    service.keys       generate (secret keys, RSA pairs), import test keys, list/show, state changes, destroy,
                       KCVs, token check
    service.channels   secure channels (SCP02/SCP03, PUT KEY, encrypted DGIs), MAC contexts, diagnosis
    service.tokens     Delegated Management tokens and receipts, DAP signatures (GPCS 2.3.1 Annex C)
    service.apps       service providers' application MACs per SE, service data sealed at rest (AES-GCM)
    service.vendor     keys received from and sent to SE vendors (TR-31, RFC 3394/5649)
    service.components key components under split knowledge: generated or entered, sealed, combined (XOR)
    service.audit      the audit records, the verification of the chain, evidence hashes anchored in it
    service.people     people who authenticate (password + TOTP), the bootstrap (docs/people.md)
    service.approvals  approvals MACed in the HSM, and the gate every privileged call passes
    service.quorum     the M-of-N quorum per operation class and per key

Public modules, the only ones other packages import (docs/architecture.md, "What each package may import"):
`service`, `errors`, `identity`, `policy`, `inventory`, `views`, `channels`, `tokens`, `apps`, `vendor`,
`components`, `runtime`, `kat`, `people`, `approvals`, `operations`, `quorum`.

No public name gives access to a PKCS#11 handle or to the audit log's internals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from globalplatform.keys import KeyAlgorithm
from keyservice import selftest, templates
from keyservice.approvals import APPROVAL_KEY_LABEL, Approvals
from keyservice.apps import Apps
from keyservice.audit import AUDIT_KEY_LABEL, AuditEntry
from keyservice.auditing import AuditTrail
from keyservice.channels import Channels
from keyservice.components import Components
from keyservice.core import Core
from keyservice.errors import ConfigurationError, SelfTestFailed, ServiceSealed
from keyservice.hsm import TEST_TOKEN_MARKER, Hsm, TokenInfo
from keyservice.identity import SERVICE_ACTOR
from keyservice.inventory import CAPABILITIES, KeyState, KeyUsage, Provenance
from keyservice.kat import KatReport
from keyservice.keys import Keys
from keyservice.models import KeyRecord
from keyservice.people import VAULT_KEY_LABEL, People
from keyservice.policy import Operation, Purpose
from keyservice.quorum import Quorum
from keyservice.strategy import SOFTHSM2, STRATEGIES, CryptoStep
from keyservice.tokens import Tokens
from keyservice.vendor import VendorExchange
from keyservice.views import KeyView, NewKey, StrategyView

AUDIT_KEY_LENGTH = 32
INTERNAL_KEYS: tuple[tuple[str, KeyAlgorithm, int, KeyUsage], ...] = (
    (VAULT_KEY_LABEL, KeyAlgorithm.AES, 32, KeyUsage.VAULT_KEY),
    (APPROVAL_KEY_LABEL, KeyAlgorithm.HMAC, 32, KeyUsage.APPROVAL_KEY),
)
"""The key service's own keys made at initialisation after the audit key: the vault key seals TOTP secrets, the
approval key MACs approvals (docs/people.md)."""


@dataclass(frozen=True)
class InitReport:
    """What `initialise` found and did."""

    test_token: bool
    audit_key_kcv: str


class KeyService:
    """The crypto boundary over one HSM token and the inventory/audit database."""

    def __init__(self, module: str, token_label: str, sessions: sessionmaker[Session], *,
                 profile: str = "softhsm2", strategies: dict[CryptoStep, str] | None = None) -> None:
        self._module, self._token_label, self._sessions = module, token_label, sessions
        self._profile, self._strategies = profile, dict(strategies or SOFTHSM2)
        self._core: Core | None = None
        self._selftest: KatReport | None = None
        self._selftest_error: str | None = None
        self.keys = Keys(self._open_core)
        self.channels = Channels(self._open_core)
        self.tokens = Tokens(self._open_core)
        self.apps = Apps(self._open_core)
        self.vendor = VendorExchange(self._open_core)
        self.components = Components(self._open_core)
        self.audit = AuditTrail(self._open_core)
        self.clock: Callable[[], float] = time.time
        """Seconds since the epoch; tests move it (STYLE.md: fake only clocks)."""
        self.people = People(self._open_core, self._now)
        self.quorum = Quorum(self._open_core, self.people, self._now)
        self.approvals = Approvals(self._open_core, self.people, self.quorum, self._now)

    def _now(self) -> float:
        return self.clock()

    def __repr__(self) -> str:
        return f"KeyService(token {self._token_label!r}, {'sealed' if self.sealed else 'unsealed'})"

    # ---- seal / unseal ------------------------------------------------------------------------------------

    @property
    def sealed(self) -> bool:
        """True until the token is open."""
        return self._core is None

    def unseal(self, user_pin: str) -> None:
        """Log in to the token (HsmLoginFailed, HsmUnavailable) and take the profile's strategy table."""
        if self._core is not None:
            return
        hsm = Hsm(self._module, self._token_label, user_pin)
        hsm.use_profile(self._profile, self._strategies)
        self._core = Core(hsm, self._sessions)
        self._core.clock = self._now
        self._core.gate = self.approvals

    def seal(self) -> None:
        """Close the token session; every call is refused until `unseal`."""
        core, self._core = self._core, None
        if core is not None:
            try:
                core.audit.flush()
            finally:
                core.hsm.close()

    def close(self) -> None:
        """Seal and close the database pool."""
        self.seal()
        engine = self._sessions.kw.get("bind")
        if engine is not None:
            engine.dispose()

    def _open_core(self) -> Core:
        if self._core is None:
            raise ServiceSealed("the key service is sealed: the token is not open")
        return self._core

    # ---- initialisation (tsm init) -----------------------------------------------------------------------

    def initialise(self, *, test_token: bool = False) -> InitReport:
        """Prepare a token for use: mark a *new, empty* token as a test token when asked (never an existing
        one), and create the HSM-resident audit key on first start (its creation is the chain's first record).
        """
        core = self._open_core()
        core.audit.make_anchors()
        marked = core.hsm.has_marker(TEST_TOKEN_MARKER)
        if test_token and not marked:
            if core.hsm.objects():
                raise ConfigurationError("the token already holds keys and is not a test token; a token becomes a "
                                         "test token only when it is created (use a new TSM_HOME)")
            core.hsm.put_marker(TEST_TOKEN_MARKER)
            marked = True
        audit_key = self._ensure_key(core, NewKey(AUDIT_KEY_LABEL, KeyAlgorithm.HMAC, AUDIT_KEY_LENGTH,
                                                  KeyUsage.AUDIT_KEY, owner="tsm"), "audit-chain")
        for label, algorithm, length, usage in INTERNAL_KEYS:
            self._ensure_key(core, NewKey(label, algorithm, length, usage, owner="tsm"), "people")
        return InitReport(marked, audit_key.kcv)

    @staticmethod
    def _ensure_key(core: Core, spec: NewKey, target: str) -> KeyView:
        """The key service's own key `spec`, created on first start (the audit key without an intent: it signs
        them)."""
        with core.sessions() as db:
            rec = db.execute(select(KeyRecord).where(KeyRecord.label == spec.label)).scalar_one_or_none()
            if rec is not None:
                return KeyView.of(rec)
        key_type = templates.key_type(spec.algorithm, spec.length)
        entry = AuditEntry(SERVICE_ACTOR, Operation.GENERATE.value, Purpose.KEY_MANAGEMENT.value, target, [], "ok")
        if any(o.label == spec.label for o in core.hsm.objects()):
            raise ConfigurationError(f"the token holds {spec.label} but the database has no record of it: this "
                                     "database does not belong to this token (a new TSM_HOME starts afresh)")
        return core.new_key(entry, spec.label, spec.usage, Provenance.GENERATED,
                            lambda cka_id: (core.hsm.generate(spec.label, cka_id, key_type, spec.length,
                                                              CAPABILITIES[spec.usage]), spec), KeyState.ACTIVE,
                            with_intent=spec.label != AUDIT_KEY_LABEL)

    # ---- self-test ----------------------------------------------------------------------------------------

    def run_selftest(self) -> KatReport:
        """Run the shipped known-answer vectors (raises SelfTestFailed); remembered for /health."""
        core = self._open_core()
        try:
            self._selftest = selftest.require(core.hsm)
        except SelfTestFailed as exc:
            self._selftest_error = str(exc)
            raise
        return self._selftest

    def selftest_status(self) -> dict[str, object]:
        """The self-test outcome of this process (run on first use)."""
        if self._selftest is None and self._selftest_error is None:
            with suppress(SelfTestFailed):
                self.run_selftest()
        if self._selftest is None:
            return {"status": "error", "detail": self._selftest_error}
        return {"status": "ok", "vectors": self._selftest.passed}

    # ---- inspection ---------------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """The state of the barrier: sealed or open, and the audit chain's health check (/health)."""
        if self._core is None:
            return {"sealed": True, "audit_chain": {"status": "sealed", "detail": "the token is not open"}}
        return {"sealed": False, "audit_chain": self.audit.status()}

    def ping_database(self) -> None:
        """One round trip to the database (SQLAlchemyError when it cannot be reached)."""
        with self._sessions() as db:
            db.execute(text("SELECT 1"))

    def is_test_token(self) -> bool:
        """Whether the token carries the test-token marker written when it was created for the lab."""
        return self._open_core().hsm.has_marker(TEST_TOKEN_MARKER)

    def token_info(self) -> TokenInfo:
        """Token identity."""
        return self._open_core().hsm.info()

    def mechanisms(self) -> set[int]:
        """CKM_* values the token really reports."""
        return self._open_core().hsm.mechanisms()

    def strategies(self) -> list[StrategyView]:
        """Per cryptographic step, the strategy the HSM profile names, and whether the token has its mechanisms."""
        reported = self.mechanisms()
        return [StrategyView(step.value, name, STRATEGIES[name].description, STRATEGIES[name].supported,
                             STRATEGIES[name].session_key_in_host_memory, STRATEGIES[name].mechanisms <= reported)
                for step, name in self._strategies.items()]

    @property
    def profile(self) -> str:
        """The name of the HSM profile in use."""
        return self._profile

