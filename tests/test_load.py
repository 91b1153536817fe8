"""The load test, short: ten seconds of bench/bench_load.py on the embedded defaults.

The same code as ``make load`` (real ``voicewatch serve`` and ``voicewatch
worker`` processes on a fresh SQLite file, HTTP ingest, dashboard reads and
notes at once), so ``make test`` catches a 5xx under concurrent load, an
event lost between "accepted" and the store, counters drifting from the events,
or a note the workers never finish. No timing is asserted.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from voicewatch.store import make_engine
from voicewatch.web.errors import ApiError
from voicewatch.web.write_gate import WriteGate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_load


def test_ten_seconds_of_load_lose_nothing_and_send_no_5xx() -> None:
    outcome = bench_load.run_setup(
        "embedded",
        10,
        drain_s=60,
        ingest_clients=3,
        batch=100,
        dashboard_clients=2,
        think_s=0.2,
        notes_per_s=2,
    )
    rec, check = outcome.rec, outcome.check
    # not vacuous: every kind of client got through many times
    assert rec.accepted >= 1_000, rec.statuses
    assert sum(rec.statuses["dashboard"].values()) >= 20, rec.statuses
    assert len(rec.notes) >= 5, rec.statuses
    assert outcome.server_errors == 0, rec.statuses
    assert rec.problems == []
    assert check.lost == 0
    assert check.stored == rec.accepted + rec.duplicates
    assert check.counter_cells > 0 and check.counter_mismatches == []
    assert check.notes_stuck == 0, check.notes_by_status
    assert outcome.failures == []


def test_the_write_gate_queues_sqlite_writers_and_bounds_the_wait(sqlite_url: str) -> None:
    """The fix for the one 503 the 5-minute load found: a server's SQLite writers queue
    in the process (woken in turn) instead of polling SQLite's lock; a wait longer than
    the busy timeout is still the 503 clients retry."""
    engine = make_engine(sqlite_url)
    gate = WriteGate(engine, timeout_s=0.2)
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with gate.held():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(5)
    t0 = time.monotonic()
    with pytest.raises(ApiError) as refused, gate.held():
        pass
    assert refused.value.status_code == 503 and refused.value.headers == {"Retry-After": "1"}
    assert 0.15 < time.monotonic() - t0 < 2
    release.set()
    thread.join()
    order: list[int] = []
    with gate.held():  # once free, writers get through one at a time
        workers = [threading.Thread(target=lambda i=i: _enter(gate, order, i)) for i in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.05)
        assert order == []
    for worker in workers:
        worker.join()
    assert sorted(order) == [0, 1, 2, 3]
    engine.dispose()
    postgres = WriteGate(make_engine("postgresql://nobody@127.0.0.1:1/none"), timeout_s=0.2)
    with postgres.held(), postgres.held():  # PostgreSQL: row locks, no gate
        pass


def _enter(gate: WriteGate, order: list[int], i: int) -> None:
    with gate.held():
        order.append(i)
