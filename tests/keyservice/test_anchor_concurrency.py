"""Processes that read and rewrite the HSM audit anchor at once (gunicorn or job workers on one token): SoftHSM2
rewrites a token object's file, so a read racing a rewrite may fail; the anchor is read again, never an error."""

from __future__ import annotations

import multiprocessing
import traceback

from pkcs11.constants import Attribute, ObjectClass

from keyservice.runtime import open_service
from tests.conftest import core_of, make_service

ROUNDS = 400
APPLICATION = "tsm.test-anchor"


def _worker(settings, n: int, queue) -> None:  # type: ignore[no-untyped-def]
    try:
        hsm = core_of(open_service(settings)).hsm
        for i in range(ROUNDS):
            hsm.set_anchor(APPLICATION, f"{n}:{i}")
            assert hsm.anchor(APPLICATION) is not None
        queue.put("ok")
    except BaseException:  # the parent prints what went wrong in the child
        queue.put(traceback.format_exc())


def test_an_anchor_rewritten_by_other_processes_is_always_readable(settings_factory, tmp_path):
    settings, test_token = settings_factory(f"sqlite:///{tmp_path / 'tsm.db'}")
    hsm = core_of(make_service(settings, test_token)).hsm
    hsm.make_anchor(APPLICATION, "start")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(settings, n, queue)) for n in range(3)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join()
    assert results == ["ok"] * 3, results
    with hsm.lock:  # never a second object made by a search that missed the first
        found = list(hsm._session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: APPLICATION}))
    assert len(found) == 1
