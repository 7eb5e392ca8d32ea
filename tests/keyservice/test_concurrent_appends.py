"""Several processes append to one audit chain at once (gunicorn workers): the chain stays whole, nothing is
sealed, and a record another "process" slips in without the HSM's MAC is caught before the anchor passes it."""

from __future__ import annotations

import multiprocessing
import traceback

import pytest
from sqlalchemy import select, update

from globalplatform.keys import KeyAlgorithm
from keyservice.audit import AuditEntry, row_hash
from keyservice.errors import ServiceSealed
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.models import AuditHead, AuditRecord
from keyservice.policy import Purpose, Request
from keyservice.runtime import close_all, open_service
from keyservice.views import NewKey
from tests.conftest import core_of, make_service

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")
TSM = Request(Caller("tsm", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "se-1")
ROUNDS = 60


def _worker(settings, queue) -> None:  # type: ignore[no-untyped-def]
    try:
        service = open_service(settings)
        for n in range(ROUNDS):
            with service.channels.mac(TSM, "mac-key") as ctx:
                ctx.mac(bytes(16))
            if n % 20 == 0:
                service.keys.kcv(OFFICER, "mac-key")
        service.close()
        queue.put("ok")
    except BaseException:  # the parent prints what went wrong in the child
        queue.put(traceback.format_exc())


def test_processes_appending_at_once_keep_one_whole_chain(settings_factory, db_url):
    settings, test_token = settings_factory(db_url)
    service = make_service(settings, test_token)
    service.keys.import_test(OFFICER, NewKey("mac-key", KeyAlgorithm.AES, 16, KeyUsage.RECEIPT_KEY, "x"), bytes(16))
    before = service.audit.verify().records
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(settings, queue)) for _ in range(3)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join()
    assert results == ["ok"] * 3, results
    per_worker = 2 * ROUNDS + ROUNDS // 20  # a MAC context opens and closes with a record; kcv one each
    assert service.audit.verify().records == before + 3 * per_worker
    assert service.audit.status()["status"] == "ok"
    close_all()


def test_a_head_moved_by_a_forged_record_is_caught_before_the_anchor_passes_it(keyservice):
    core = core_of(keyservice)
    keyservice.keys.import_test(OFFICER, NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x"), bytes(16))
    keyservice.keys.kcv(OFFICER, "k")  # this process now knows the head
    with core.sessions() as db, db.begin():
        head = db.execute(select(AuditHead)).scalar_one()
        forged = AuditRecord(seq=head.seq + 1, ts="2026-12-01T00:00:00+00:00", actor="officer:mallory",
                             operation="change-state", purpose="KEY_MANAGEMENT", target="x", keys='[["k",""]]',
                             outcome="ok", detail="", prev_hash=head.record_hash, record_hash="", mac="00" * 32)
        forged.record_hash = row_hash(forged)  # a correct hash and link; only the HSM could make the MAC
        db.add(forged)
        db.execute(update(AuditHead).values(seq=forged.seq, record_hash=forged.record_hash))
    # the one-round-trip append takes the moved head for another process's record and links after it ...
    core.audit.append(AuditEntry("service:tsm", "mac-close", "SE_MANAGEMENT", "se-1", [("k", "")], "ok"))
    # ... but the anchor never passes it unchecked: the next anchor write (here the health check's) seals
    assert keyservice.audit.status()["status"] == "sealed"
    with pytest.raises(ServiceSealed):
        keyservice.keys.kcv(OFFICER, "k")


def test_the_locking_path_checks_another_process_s_records_at_once(keyservice):
    core = core_of(keyservice)
    keyservice.keys.import_test(OFFICER, NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x"), bytes(16))
    with core.sessions() as db, db.begin():
        head = db.execute(select(AuditHead)).scalar_one()
        forged = AuditRecord(seq=head.seq + 1, ts="2026-12-01T00:00:00+00:00", actor="officer:mallory",
                             operation="kcv", purpose="KEY_MANAGEMENT", target="x", keys="[]", outcome="ok",
                             detail="", prev_hash=head.record_hash, record_hash="", mac="00" * 32)
        forged.record_hash = row_hash(forged)
        db.add(forged)
        db.execute(update(AuditHead).values(seq=forged.seq, record_hash=forged.record_hash))
    with pytest.raises(ServiceSealed):
        keyservice.keys.kcv(OFFICER, "k")
