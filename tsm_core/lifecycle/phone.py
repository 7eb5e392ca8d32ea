"""The phone app's side of the life cycle (docs/api.md, "Phone apps"; docs/relay.md, "Device sessions"): a device,
authenticated by its own API key, opens a relay session bound to its SE, itself and (optionally) one of its
operations; the TSM side then runs, over that session, what waits for the device and the operation.

`run_session` holds the session's id (a bearer secret, stored only hashed) and blocks for the whole job: it runs
in the process that opened the session or was handed its id (today the test process or an embedding
integration; docs/api.md says why no web worker runs it).
"""

from __future__ import annotations

from typing import Final

from tsm_core.context import Tsm
from tsm_core.errors import Conflict
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.jobs.views import JobView
from tsm_core.lifecycle import service as lifecycle
from tsm_core.registry import service as registry
from tsm_core.transport.relay import DEFAULT_ANSWER_TIMEOUT, RelayTransport
from tsm_core.transport.relay_store import DEFAULT_TTL, RelaySession, RelayStore

RUNNABLE: Final = frozenset({engine.PENDING, engine.WAITING, engine.IN_ERROR})
"""Job states an operation may be run (or resumed) from over a device's relay session."""


def open_relay(tsm: Tsm, store: RelayStore, operation_id: str | None = None, ttl: float = DEFAULT_TTL
               ) -> RelaySession:
    """A relay session for the calling device's SE (device keys only), bound to the device and to its operation
    `operation_id` when given (NotFound for another device's; Conflict for one with nothing left to run)."""
    tsm.scope.only("device", action="opening a relay session")
    se_id = registry.show(tsm, tsm.scope.name).id
    if operation_id is not None:
        view = jobs.show(tsm, operation_id, apdus=False)
        if view.state not in RUNNABLE:
            raise Conflict(f"operation {operation_id} is {view.state}: nothing to run over a relay session")
    return store.open_session(se_id, ttl, job_id=operation_id, device_id=str(tsm.scope))


def run_session(tsm: Tsm, store: RelayStore, session_id: str, *,
                answer_timeout: float = DEFAULT_ANSWER_TIMEOUT) -> list[JobView]:
    """Run over the relay session what it serves: the jobs waiting for its SE's next contact (oldest first),
    then its operation if that is not done yet (resumed where it stopped); the session is closed at the end.
    The jobs as they ended."""
    binding = store.binding(session_id)
    try:
        with RelayTransport(store, session_id, binding.se_id, answer_timeout=answer_timeout) as transport:
            ran = lifecycle.contact(tsm, binding.se_id, transport)
            if binding.job_id is not None and not any(v.id == binding.job_id for v in ran) \
                    and jobs.show(tsm, binding.job_id, apdus=False).state in RUNNABLE:
                ran.append(engine.run(tsm, binding.job_id, transport))
    finally:
        store.close_session(session_id)  # also when the transport never connected
    return ran
