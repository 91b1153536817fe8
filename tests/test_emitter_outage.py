"""The emitter through store outages: a locked SQLite file, a stopped PostgreSQL, a full queue.

The PostgreSQL test stops a private cluster of its own for 10 s (see
``private_services``), never the shared server other test runs use.
"""

from __future__ import annotations

import resource
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from private_services import PrivatePostgres
from voicewatch.emitter import Monitor
from voicewatch.store import make_engine, migrate
from voicewatch.store.tables import voice_pipeline_events as events_t

OUTAGE_S = 10.0
MAX_EMIT_NS = 5_000_000  # the slowest single emit() call allowed through an outage


def _involuntary_switches() -> int:
    """How often the kernel has taken the CPU from any thread of this process.

    Of the whole process, not the calling thread: a call also waits when the
    thread holding the GIL is preempted (a clean-clone run in random order had
    one 10.3 ms call with no preemption of its own thread while the other xdist
    worker loaded the second core). Waiting for the GIL or a lock is a
    *voluntary* switch, so a call that blocks in the emitter still counts;
    only the machine's own load is set apart.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


class SteadyEmitter(threading.Thread):
    """A pipeline thread: one event per millisecond, every call timed on its own.

    ``took_ns`` holds every call; ``own_ns`` leaves out the calls during which
    the kernel preempted the thread for another process (an overloaded CI box
    can do that for several ms, and no emitter can prevent it).
    """

    def __init__(self, monitor: Monitor, org: str, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.monitor = monitor
        self.org = org
        self.interval = interval
        self.stop = threading.Event()
        self.ids: list[str] = []
        self.took_ns: list[int] = []
        self.own_ns: list[int] = []
        self.raised: list[BaseException] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            switches = _involuntary_switches()
            began = time.perf_counter_ns()
            try:
                event_id = self.monitor.emit(
                    "artifact_received", artifact_id=f"{self.org}_{i}", organization_id=self.org
                )
            except BaseException as exc:  # the point of the test: this must never happen
                self.raised.append(exc)
                event_id = None
            took = time.perf_counter_ns() - began
            self.took_ns.append(took)
            if _involuntary_switches() == switches:
                self.own_ns.append(took)
            if event_id is not None:
                self.ids.append(event_id)
            i += 1
            time.sleep(self.interval)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=10)

    def summary(self) -> str:
        took = sorted(self.took_ns)
        p50 = took[len(took) // 2] / 1000
        p99 = took[int(len(took) * 0.99)] / 1000
        own_max = max(self.own_ns) / 1000
        return (
            f"{len(took)} emit() calls: median {p50:.1f} µs, p99 {p99:.1f} µs, "
            f"max {took[-1] / 1000:.1f} µs ({own_max:.1f} µs leaving out "
            f"{len(took) - len(self.own_ns)} calls the kernel preempted)"
        )


def stored_ids(url: str, org: str) -> list[str]:
    engine = make_engine(url, pool=False)
    try:
        with engine.connect() as conn:
            query = select(events_t.c.event_id).where(events_t.c.organization_id == org)
            return [r[0] for r in conn.execute(query)]
    finally:
        engine.dispose()


@contextmanager
def sqlite_write_lock(url: str) -> Iterator[None]:
    """Another connection holds the database's write lock until the block ends."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def assert_survived(monitor: Monitor, emitter: SteadyEmitter, url: str, *, written: int) -> None:
    print(f"\n{emitter.summary()}; {monitor.stats()}")
    assert emitter.raised == []
    assert monitor.flush(timeout=60), monitor.stats()
    landed = stored_ids(url, emitter.org)
    assert len(landed) == len(set(landed)) == len(emitter.ids)
    assert set(landed) == set(emitter.ids)
    stats = monitor.stats()
    assert stats["retries"] > 0  # the outage was felt
    assert (stats["dropped"], stats["errors"], stats["rejected"]) == (0, 0, 0)
    assert stats["written"] == written + len(emitter.ids)
    assert len(emitter.own_ns) > 0.95 * len(emitter.took_ns), emitter.summary()
    assert max(emitter.own_ns) < MAX_EMIT_NS, emitter.summary()


def test_sqlite_write_lock_held_for_10_s(sqlite_url: str, tmp_path: Path) -> None:
    monitor = Monitor(database_url=sqlite_url, spill_dir=tmp_path / "spill")
    try:
        monitor.emit("artifact_received", organization_id="org_warm")
        assert monitor.flush(timeout=10)  # engine made, schema checked: the writer is idle
        emitter = SteadyEmitter(monitor, "org_lock")
        with sqlite_write_lock(sqlite_url):
            emitter.start()
            time.sleep(OUTAGE_S)
            assert monitor.stats()["written"] == 1  # nothing got past the lock
            assert monitor.stats()["queue_depth"] > 1_000
        time.sleep(0.5)
        emitter.finish()
        assert len(emitter.ids) > 3_000
        assert_survived(monitor, emitter, sqlite_url, written=1)
    finally:
        monitor.close(timeout=10)


def test_a_tiny_queue_spills_to_disk_during_an_outage_and_everything_lands(
    sqlite_url: str, tmp_path: Path
) -> None:
    monitor = Monitor(database_url=sqlite_url, spill_dir=tmp_path / "spill", max_queue=10)
    try:
        monitor.emit("artifact_received", organization_id="org_warm")
        assert monitor.flush(timeout=10)
        emitter = SteadyEmitter(monitor, "org_spill", interval=0.002)
        with sqlite_write_lock(sqlite_url):
            emitter.start()
            time.sleep(2.5)
            spilled_now = sum(
                len(p.read_text().splitlines()) for p in monitor.spill_path.glob("*.jsonl")
            )
            assert spilled_now > 100  # on disk, not in memory
            monitor.emit("artifact_received", artifact_id=object())  # not JSON: rejected
        time.sleep(0.3)
        emitter.finish()
        print(f"\n{emitter.summary()}; {monitor.stats()}")
        assert emitter.raised == []
        assert monitor.flush(timeout=60), monitor.stats()
        assert set(stored_ids(sqlite_url, "org_spill")) == set(emitter.ids)
        stats = monitor.stats()
        assert stats["spilled"] >= spilled_now
        assert stats["replayed"] >= stats["spilled"]
        assert (stats["dropped"], stats["rejected"], stats["errors"]) == (0, 1, 0)
        assert stats["written"] == 1 + len(emitter.ids)
        assert list(monitor.spill_path.glob("*.jsonl")) == []  # replayed, then deleted
        # Spilling writes to a file: the odd call pays for a system call, and for
        # the GIL hand-over after it while the writer replays. p99 stays small.
        assert sorted(emitter.took_ns)[int(len(emitter.took_ns) * 0.99)] < 1_000_000
    finally:
        monitor.close(timeout=10)


def test_a_monitor_closed_during_an_outage_leaves_its_events_for_the_next_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    first = Monitor(database_url=sqlite_url, spill_dir=spill, max_queue=50)
    first.emit("artifact_received", organization_id="org_warm")
    assert first.flush(timeout=10)
    with sqlite_write_lock(sqlite_url):
        ids = {first.emit("artifact_received", organization_id="org_gone") for _ in range(300)}
        assert not first.close(timeout=0.5)  # the store is locked: it cannot finish
        assert first.stats()["dropped"] == 0
        assert len(list(first.spill_path.glob("*.jsonl"))) >= 1
    second = Monitor(database_url=sqlite_url, spill_dir=spill)
    try:
        assert second.flush(timeout=30)
        assert set(stored_ids(sqlite_url, "org_gone")) == ids
        assert list(second.spill_path.glob("*.jsonl")) == []
    finally:
        second.close(timeout=10)


# --- PostgreSQL stopped ------------------------------------------------------------------------


@contextmanager
def postgres_stopped(server: PrivatePostgres) -> Iterator[None]:
    """Stop the private PostgreSQL cluster; start it again whatever happens."""
    server.stop()
    try:
        yield
    finally:
        server.start()


@pytest.fixture
def outage_postgres(private_postgres: PrivatePostgres) -> str:
    """A fresh, migrated database on the private cluster (this test stops that cluster)."""
    url = private_postgres.create_database("emitter_outage")
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.mark.slow
def test_postgresql_stopped_for_10_s(
    private_postgres: PrivatePostgres, outage_postgres: str, tmp_path: Path
) -> None:
    url = outage_postgres
    monitor = Monitor(database_url=url, spill_dir=tmp_path / "spill")
    try:
        monitor.emit("artifact_received", organization_id="org_warm")
        assert monitor.flush(timeout=10)
        emitter = SteadyEmitter(monitor, "org_pg_down")
        with postgres_stopped(private_postgres):
            emitter.start()
            time.sleep(OUTAGE_S)
            assert monitor.stats()["written"] == 1
        assert private_postgres.ready()
        time.sleep(0.5)
        emitter.finish()
        assert len(emitter.ids) > 3_000
        assert_survived(monitor, emitter, url, written=1)
    finally:
        monitor.close(timeout=10)
