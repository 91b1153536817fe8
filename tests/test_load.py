"""The load test, short: ten seconds of bench/bench_load.py on the embedded defaults.

The same code as ``make load`` (real ``voicewatch serve`` and ``voicewatch
worker`` processes on a fresh SQLite file, HTTP ingest, dashboard reads and
notes at once), so ``make test`` catches a 5xx under concurrent load, an
event lost between "accepted" and the store, counters drifting from the events,
or a note the workers never finish. No timing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
