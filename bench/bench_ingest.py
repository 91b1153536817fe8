"""Ingest benchmark: sustained events/s through ``events.log_events``.

Loads realistic event streams (tests/factories.py: whole artifact stories with
stage durations, metadata and costs, three organizations, 5% failures) in
batches of 1000 into

  (a) a fresh SQLite file in a temporary directory, and
  (b) PostgreSQL at VOICEWATCH_BENCH_POSTGRES_URL (default the test_c database),
      whose ``public`` schema is dropped and migrated afresh first,

and prints events/s and the time per batch (median, p99). It prints, it does
not assert; the issue's goal is >= 30,000 events/s into SQLite.

Event ids come two ways, and both are measured (``--ids``):

* ``sdk``: as ``Monitor.emit`` makes them, a per-process random prefix and a
  counter, here from four emitting processes (an artifact's events come from
  one). Each process's ids are ordered, so the unique event-id index grows at
  four points and a batch dirties few of its pages.
* ``uuid4``: random UUIDs made by a client itself. Each lands on a random page
  of the event-id index, so a batch of 1000 dirties up to 1000 pages, which
  SQLite writes to the WAL at commit: throughput falls as the index outgrows
  the batch (clients making their own ids should make them time-ordered, e.g.
  UUIDv7).

    .venv/bin/python bench/bench_ingest.py [--events 200000] [--batch 1000]
                                            [--only sqlite|postgresql] [--ids sdk|uuid4]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factories import BASE_MS, make_traffic
from voicewatch.events import log_events
from voicewatch.store import make_engine, migrate
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t

POSTGRES_URL = os.environ.get(
    "VOICEWATCH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test_c"
)
GOAL_SQLITE = 30_000


def realistic_events(count: int, seed: int = 2026) -> list[dict[str, Any]]:
    """At least ``count`` events of whole artifact stories, oldest first, cut to ``count``."""
    # ~13.5 events per artifact; spread the artifacts at ~40 new per minute
    artifacts = count // 12 + 1
    events = make_traffic(artifacts, start_ms=BASE_MS, spread_ms=artifacts * 1_500, rng=seed)
    return events[:count]


def with_sdk_ids(events: list[dict[str, Any]], processes: int = 4, seed: int = 7) -> None:
    """Give ``events`` ids as ``Monitor.emit`` makes them, from ``processes`` emitters."""
    rng = random.Random(seed)
    prefixes = [f"{rng.getrandbits(64):016x}-" for _ in range(processes)]
    counters = [itertools.count() for _ in range(processes)]
    owner: dict[str, int] = {}
    for event in events:
        k = owner.setdefault(event["artifact_id"], len(owner) % processes)
        event["event_id"] = prefixes[k] + format(next(counters[k]), "012x")


def reset_postgres(url: str) -> Engine:
    """Create the database if missing, drop and recreate its schema, then migrate."""
    server, name = url.rsplit("/", 1)
    admin = make_engine(f"{server}/postgres")
    with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if exists.first() is None:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    return engine


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def run(name: str, engine: Engine, events: list[dict[str, Any]], batch: int) -> dict[str, float]:
    # warm the pool and the statement caches on a throwaway batch of other ids
    log_events(engine, realistic_events(200, seed=1))
    times: list[float] = []
    accepted = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        t0 = time.perf_counter()
        result = log_events(engine, chunk)
        times.append(time.perf_counter() - t0)
        accepted += result.accepted
        if result.rejected:
            raise SystemExit(f"{name}: rejected {result.rejected[:3]}")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(events_t)).scalar_one()
        counters = conn.execute(select(func.count()).select_from(counters_t)).scalar_one()
    ms = sorted(t * 1000 for t in times)
    figures = {
        "events": len(events),
        "accepted": accepted,
        "stored": stored,
        "counter_rows": counters,
        "seconds": elapsed,
        "events_per_s": accepted / elapsed,
        "events_per_cpu_s": accepted / cpu,
        "median_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": ms[-1],
    }
    print(
        f"{name:<11} {accepted:>8,} events in {elapsed:6.2f} s = "
        f"{figures['events_per_s']:>9,.0f} events/s | per {batch}-event batch: "
        f"median {figures['median_ms']:6.1f} ms, p99 {figures['p99_ms']:6.1f} ms, "
        f"max {figures['max_ms']:6.1f} ms | stored {stored:,}, counter rows {counters:,}",
        flush=True,
    )
    # On a shared machine the wall clock includes other processes' turns; the
    # CPU time of this process (SQLite runs in it; PostgreSQL's server does not)
    # says what the ingest path itself costs.
    print(
        f"{'':<11} this process's CPU: {cpu:6.2f} s = "
        f"{figures['events_per_cpu_s']:>9,.0f} events per CPU-second",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--ids", choices=("sdk", "uuid4"), help="default: both")
    args = parser.parse_args()

    t0 = time.perf_counter()
    events = realistic_events(args.events)
    print(
        f"generated {len(events):,} realistic events "
        f"({len({e['artifact_id'] for e in events}):,} artifacts) "
        f"in {time.perf_counter() - t0:.1f} s; batches of {args.batch}",
        flush=True,
    )

    for ids in [args.ids] if args.ids else ["sdk", "uuid4"]:
        batch = [dict(e) for e in events]
        if ids == "sdk":
            with_sdk_ids(batch)
        print(f"-- event ids: {ids}", flush=True)
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory(prefix="vw-bench-") as tmp:
                engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
                migrate(engine)
                figures = run("SQLite", engine, batch, args.batch)
                engine.dispose()
            verdict = "meets" if figures["events_per_s"] >= GOAL_SQLITE else "BELOW"
            print(f"            {verdict} the goal of {GOAL_SQLITE:,} events/s into SQLite")
        if args.only in (None, "postgresql"):
            try:
                engine = reset_postgres(POSTGRES_URL)
            except Exception as exc:  # the bench still reports SQLite without a server
                problem = f"{type(exc).__name__}: {exc}"
                print(f"PostgreSQL  skipped: {POSTGRES_URL} not usable ({problem})")
                continue
            run("PostgreSQL", engine, batch, args.batch)
            engine.dispose()


if __name__ == "__main__":
    main()
