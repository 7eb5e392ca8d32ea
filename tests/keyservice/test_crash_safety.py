"""Crash-safe key life (issue 8): a process killed (SIGKILL) at each step of generate and destroy leaves nothing
usable unaccounted for; `keys check` names the remedy and `keys reconcile` rolls each interruption forward or back.

The victim is a separate process that opens the same token and database, wraps one step with a function that
kills the process (before or after the real step), and runs the operation. No production code knows about it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from globalplatform.keys import KeyAlgorithm
from keyservice.errors import KeyNotFound
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.runtime import close_all
from keyservice.views import NewKey
from tests.conftest import SOFTHSM_CONF, TOKEN_DIR, core_of, make_service

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")

VICTIM = textwrap.dedent('''
    import os, signal, sys
    from globalplatform.keys import KeyAlgorithm
    from keyservice.identity import Caller, CallerKind
    from keyservice.inventory import KeyUsage
    from keyservice.policy import Purpose, Request
    from keyservice.runtime import open_service
    from keyservice.views import NewKey
    from storage.config import load_settings
    import keyservice.audit, keyservice.hsm, keyservice.records

    operation, step, when = sys.argv[1:4]
    owner, name = {"intent": (keyservice.records.Signer, "begin"), "object": (keyservice.hsm.Hsm, step),
                   "record": (keyservice.records.Signer, "sign"),
                   "anchor": (keyservice.audit.AuditLog, "write_anchor")}[step if step in
                   ("intent", "record", "anchor") else "object"]
    real = getattr(owner, name)

    def dying(*args, **kwargs):
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    service = open_service(load_settings())
    setattr(owner, name, dying)
    req = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "crash")
    if operation == "generate":
        service.keys.generate(req, NewKey("victim", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    elif operation == "generate-rsa":
        service.keys.generate(req, NewKey("victim", KeyAlgorithm.RSA, 1024, KeyUsage.TOKEN_KEY, "issuer"))
    else:
        service.keys.destroy(req, "victim")
    print("survived")
''')


def _run_victim(settings, operation: str, step: str, when: str) -> int:
    env = {**os.environ, "TSM_HOME": str(settings.home), "TSM_DATABASE_URL": settings.database_url,
           "TSM_TOKEN_LABEL": settings.token_label, "SOFTHSM2_CONF": str(SOFTHSM_CONF),
           "TSM_TOKEN_DIR": str(TOKEN_DIR)}
    proc = subprocess.run([sys.executable, "-c", VICTIM, operation, step, when], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


def _accounted(service) -> None:
    """Nothing usable unaccounted: token and inventory agree, no intent pending, the chain verifies."""
    report = service.keys.check()
    assert report.consistent, report
    service.audit.verify()


# (operation, wrapped step, before/after): every point between the steps of generate and destroy.
GENERATE_POINTS = [("generate", "intent", "after"), ("generate", "generate", "before"),
                   ("generate", "generate", "after"), ("generate", "record", "after"),
                   ("generate", "anchor", "before")]
RSA_POINTS = [("generate-rsa", "intent", "after"), ("generate-rsa", "generate_pair", "after"),
              ("generate-rsa", "record", "after")]
"""An RSA pair is two token objects made by one C_GenerateKeyPair: both are rolled back or kept together."""
DESTROY_POINTS = [("destroy", "intent", "after"), ("destroy", "record", "after"), ("destroy", "destroy", "before"),
                  ("destroy", "destroy", "after"), ("destroy", "anchor", "before")]


@pytest.mark.parametrize(("operation", "step", "when"), GENERATE_POINTS + RSA_POINTS + DESTROY_POINTS)
def test_killed_at_each_step_nothing_is_left_unaccounted(settings_factory, db_url, operation, step, when):
    settings, test_token = settings_factory(db_url)
    service = make_service(settings, test_token)
    if operation == "destroy":
        service.keys.generate(OFFICER, NewKey("victim", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    close_all()
    assert _run_victim(settings, operation, step, when) == -signal.SIGKILL
    service = make_service(settings, False)

    findings = service.keys.reconcile(OFFICER)  # a dry run names what it would do
    check = service.keys.check()
    if findings:
        assert not check.consistent and all("tsm keys reconcile" in line for line in
                                            check.interrupted + check.untrusted_records)
    service.keys.reconcile(OFFICER, apply=True)
    _accounted(service)

    labels = {k.label: k.state for k in service.keys.list_keys(include_destroyed=True)}
    on_token = {o.label for o in core_of(service).hsm.objects()}
    if "victim" in labels and labels["victim"] != KeyState.DESTROYED:
        assert "victim" in on_token  # a live record always has its object
        service.keys.destroy(OFFICER, "victim")  # and can be destroyed
    else:
        assert "victim" not in on_token  # no object without a live record
        if "victim" not in labels:  # a rolled-back generate frees the label
            service.keys.generate(OFFICER, NewKey("victim", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    _accounted(service)


def test_a_forged_intent_destroys_nothing(keyservice):
    from keyservice.models import Intent

    keyservice.keys.generate(OFFICER, NewKey("precious", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    cka_id = keyservice.keys.show("precious").cka_id
    with core_of(keyservice).sessions() as db, db.begin():
        db.add(Intent(id="f" * 32, operation="generate", label="precious", cka_id=cka_id, actor="officer:mallory",
                      created_at="2026-12-01T00:00:00", mac="00" * 32))
    found = keyservice.keys.reconcile(OFFICER, apply=True)
    assert [f.kind for f in found] == ["forged-intent"]
    assert keyservice.keys.show("precious").state == KeyState.PRE_ACTIVATION
    assert "precious" in {o.label for o in core_of(keyservice).hsm.objects()}
    _accounted(keyservice)


def test_reconcile_is_reserved_to_officers(keyservice):
    from keyservice.errors import PolicyDenied

    with pytest.raises(PolicyDenied):
        keyservice.keys.reconcile(Request(Caller("tsm", CallerKind.SERVICE), Purpose.KEY_MANAGEMENT, "x"))
    with pytest.raises(KeyNotFound):
        keyservice.keys.show("nothing")
