"""Worker processes of the benchmarks: their results, collected without waiting on one that died."""

from __future__ import annotations

import multiprocessing
from queue import Empty
from typing import Any, TypeVar

T = TypeVar("T")


def collect(results: multiprocessing.Queue[T], workers: list[Any]) -> list[T]:
    """One result from each worker; a worker that died is an error, not a wait."""
    out: list[T] = []
    while len(out) < len(workers):
        try:
            out.append(results.get(timeout=1))
        except Empty:
            failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if failed:
                raise SystemExit(f"a worker process ended with exit code {failed[0]}") from None
    return out
