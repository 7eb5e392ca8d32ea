"""Where a benchmark's time goes (`--profile` of bench/provisioning.py and bench/lifecycle.py): the CPU of this
process and of PostgreSQL, the SQL statements and transactions per unit of work, and a cProfile by package and
by function; and the min / median / max the figures are printed as."""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


def spread(values: list[float], digits: int) -> str:
    """min / median / max."""
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f} / {max(values):.{digits}f}"


def server_cpu() -> float:
    """CPU seconds this host's PostgreSQL processes have used (Linux /proc: utime + stime)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().split(" (", 1)[1].rsplit(") ", 1)
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
        if name == "postgres":
            fields = rest.split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_split(run: Callable[[], object], count: int, unit: str) -> None:
    """Wall time and CPU of this process and of PostgreSQL per `unit`, for `run` doing `count` of them."""
    wall, mine, server = time.perf_counter(), os.times(), server_cpu()
    run()
    wall, server, after = time.perf_counter() - wall, server_cpu() - server, os.times()
    own_cpu = after.user - mine.user + after.system - mine.system
    print(f"\nPer {unit}, {count} in-process {unit}s: {wall / count * 1000:.1f} ms, CPU "
          f"{own_cpu / count * 1000:.1f} ms in this process and {server / count * 1000:.1f} ms in PostgreSQL "
          "(all its processes on this host)")


def sql_and_cprofile(run: Callable[[], object], count: int, unit: str, statements_shown: int = 22) -> None:
    """The SQL statements `run` sends per `unit` by table, its transactions, and a cProfile of it by package
    and by function."""
    statements: Counter[str] = Counter()
    in_transaction: set[int] = set()
    """Connections that sent a statement since their transaction began (psycopg sent BEGIN)."""

    def count_statement(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split()
        table = next((w for w, prev in zip(words[1:], words, strict=False) if prev in ("FROM", "INTO", "UPDATE")),
                     words[1] if len(words) > 1 else "")
        statements[f"{words[0]} {table}"] += 1
        in_transaction.add(id(conn))

    def ended(kind: str) -> Callable[[Any], None]:
        def count_end(conn: Any) -> None:
            if id(conn) in in_transaction:
                in_transaction.discard(id(conn))
                statements[f"(BEGIN ... {kind})"] += 1
        return count_end

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", count_statement), ("commit", ended("COMMIT")), ("rollback", ended("ROLLBACK"))]
    for name, listener in listeners:
        event.listen(Engine, name, listener)
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    for name, listener in listeners:
        event.remove(Engine, name, listener)
    transactions = sum(n for name, n in statements.items() if name.startswith("(BEGIN"))
    print(f"\nSQL per {unit}: {(sum(statements.values()) - transactions) / count:.0f} statements in "
          f"{transactions / count:.0f} transactions (each also a BEGIN and a COMMIT or ROLLBACK round trip):")
    for name, n in statements.most_common(statements_shown):
        print(f"  {n / count:6.1f}  {name}")
    stats = pstats.Stats(profiler)
    own: Counter[str] = Counter()
    for (path, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        own[_package(path)] += tottime
    total = sum(own.values())
    print(f"\nOwn time by package, cProfile of {count} in-process {unit}s ({total / count * 1000:.0f} ms per {unit} "
          "under the profiler; waiting for PostgreSQL counts as psycopg's):")
    for name, seconds in own.most_common(12):
        print(f"  {seconds / count * 1000:6.1f} ms  {seconds / total:4.0%}  {name}")
    print("\nBy function (cumulative):")
    stats.sort_stats("cumulative").print_stats(40)


def _package(path: str) -> str:
    """Who a profiled function belongs to: a third-party distribution, a package of the product, or Python."""
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0]
    root = str(Path(__file__).resolve().parents[1]) + "/"
    if path.startswith(root):
        return path[len(root):].split("/")[0]
    return "built-ins (C calls)" if path == "~" else "Python standard library"
