"""Many SEs in the registry, bulk-loaded as discovery registers a fresh wearable, and the latency of the registry's
lookups against raw SELECTs through psycopg (part of bench/provisioning.py).

Per SE: its row in tsm_secure_elements (COPY through psycopg), its ISD in tsm_security_domains with the ISD's key
set in tsm_sd_key_sets, and the two Registry entries GET STATUS shows on a fresh wearable (the ISD and the
Security Domain package in ROM) in tsm_card_entries (INSERT ... SELECT on the server); then VACUUM ANALYZE.
Timed per call (perf_counter_ns) for random SE ids: the raw SELECT by primary key (1.00), `registry.show` (the
SE with profile, domains, key sets and content), a raw keyset page (the SEs after an id, with the profile's name)
and `registry.list_ses(after=id, limit=page)`.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import psycopg

from tsm_core.context import Tsm
from tsm_core.jobs.queue import conninfo
from tsm_core.registry import service as registry

KDD_PREFIX: Final = "42454E43"
"""'BENC': the first 4 KDD bytes of the bulk-loaded SEs (cardsim's are 'CSM1')."""
MULTIPLIER: Final = 0x5DEECE66D
"""Odd, so i -> i * MULTIPLIER mod 2^48 is a bijection: distinct, scattered KDDs."""
FIRST_ID: Final = "se-" + KDD_PREFIX.lower()
LAST_ID: Final = "se-42454e44"
CPLC_HEAD: Final = "43534D310231500101005060"
ISD_AID: Final = "A000000151000000"
SD_PACKAGE: Final = "A0000001515350"
SD_MODULE: Final = "A000000151535041"
COLUMNS: Final = ("id, kdd, cin, iin, cplc, ic_serial, device_kind, profile_id, isd_key, isd_kvn, life_cycle, free_nv, "
                  "free_volatile, confirmation_counter, registered_at, seen_at")
BENCH_SES: Final = "FROM tsm_secure_elements WHERE id >= %(first)s AND id < %(last)s"
RAW_PK: Final = "SELECT * FROM tsm_secure_elements WHERE id = %s"
RAW_PAGE: Final = ("SELECT s.*, p.name FROM tsm_secure_elements s JOIN tsm_se_profiles p ON p.id = s.profile_id "
                   "WHERE s.id > %s ORDER BY s.id LIMIT %s")


def kdd(i: int) -> str:
    return KDD_PREFIX + f"{i * MULTIPLIER % (1 << 48):012X}"


def se_id(i: int) -> str:
    return registry.se_id_for(bytes.fromhex(kdd(i)))


def bulk_load(database_url: str, count: int, device_kind: str) -> float:
    """Register `count` SEs of the database's first SE profile; the seconds it took."""
    start = time.perf_counter()
    now = datetime.now(UTC)
    ids = {"first": FIRST_ID, "last": LAST_ID}
    with psycopg.connect(conninfo(database_url)) as conn:
        row = conn.execute("SELECT id FROM tsm_se_profiles ORDER BY id LIMIT 1").fetchone()
        if row is None:
            raise SystemExit("no SE profile: discover a card first")
        with conn.cursor() as cur:
            with cur.copy(f"COPY tsm_secure_elements ({COLUMNS}) FROM STDIN") as copy:
                for i in range(count):
                    k = kdd(i)
                    copy.write_row((f"se-{k.lower()}", k, k, "", CPLC_HEAD + k[8:] + "0" * 48, k[8:16], device_kind,
                                    row[0], "vendor-isd", 0xFF, "SECURED", 131072, 8192, -1, now, now))
            cur.execute("INSERT INTO tsm_security_domains (se_id, aid, parent_aid, mode, privileges, life_cycle) "
                        f"SELECT id, '{ISD_AID}', '', 'isd', '9EFE80', '0F' {BENCH_SES}", ids)
            cur.execute("INSERT INTO tsm_sd_key_sets (sd_id, kvn, keys, diversification, active, created_at) "
                        "SELECT id, 255, 'vendor-isd', 'none', true, %(now)s FROM tsm_security_domains "
                        "WHERE se_id >= %(first)s AND se_id < %(last)s", {**ids, "now": now})
            for aid, kind, life_cycle, privileges, modules in ((ISD_AID, "isd", 15, "9EFE80", ""),
                                                               (SD_PACKAGE, "elf", 1, "", SD_MODULE)):
                cur.execute("INSERT INTO tsm_card_entries (se_id, aid, kind, life_cycle, privileges, associated_sd, "
                            f"elf_aid, modules) SELECT id, %(aid)s, %(kind)s, %(lc)s, %(priv)s, '{ISD_AID}', '', "
                            f"%(modules)s {BENCH_SES}",
                            {**ids, "aid": aid, "kind": kind, "lc": life_cycle, "priv": privileges, "modules": modules})
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE tsm_secure_elements, tsm_security_domains, tsm_sd_key_sets, tsm_card_entries")
    return time.perf_counter() - start


def _percentiles(fn: Callable[[str], object], count: int, seconds: float, rng: random.Random) -> tuple[float, float]:
    """p50 and p99 in µs of `fn(random SE id)` called for `seconds`."""
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        target = se_id(rng.randrange(count))
        start = time.perf_counter_ns()
        fn(target)
        samples.append(time.perf_counter_ns() - start)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] / 1000, cuts[98] / 1000


def time_lookups(tsm: Tsm, database_url: str, count: int, seconds: float, rounds: int, page: int) -> None:
    """Print p50 / p99 (median of the rounds) and the p50 ratio to the raw SELECT by primary key."""
    rng = random.Random(9)
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        kinds: dict[str, Callable[[str], object]] = {
            "raw SELECT by primary key (psycopg)": lambda s: conn.execute(RAW_PK, (s,), prepare=True).fetchone(),
            "registry.show": lambda s: registry.show(tsm, s),
            f"raw keyset page of {page} SEs (psycopg)":
                lambda s: conn.execute(RAW_PAGE, (s, page), prepare=True).fetchall(),
            f"registry.list_ses, {page} after an id": lambda s: registry.list_ses(tsm, after=s, limit=page),
        }
        for fn in kinds.values():
            _percentiles(fn, count, min(seconds, 0.5), rng)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
        for _ in range(rounds):
            for name, fn in kinds.items():
                results[name].append(_percentiles(fn, count, seconds, rng))
    base = [p50 for p50, _ in results["raw SELECT by primary key (psycopg)"]]
    print(f"  {'':44} {'p50 µs':>8} {'p99 µs':>8}   p50 ÷ raw PK p50 (min / median / max)")
    for name, values in results.items():
        ratios = [p50 / b for (p50, _), b in zip(values, base, strict=True)]
        print(f"  {name:44} {statistics.median(v[0] for v in values):8.0f} "
              f"{statistics.median(v[1] for v in values):8.0f}   "
              f"{min(ratios):.1f} / {statistics.median(ratios):.1f} / {max(ratios):.1f}")
