"""Pipeline benchmarks (figures printed, not asserted).

1. Instrumentation cost: the time each stage spends inside ``emit()`` (the only
   way the pipeline reaches the harness), per stage run; and the mean stage
   time with the real emitter versus with monitoring switched off.
2. Throughput: text notes per minute through the real pipeline on the embedded
   defaults (SQLite store, SQLite Huey queue, two worker threads, rules
   extractor), from first submit to last artifact settled.

Run: .venv/bin/python bench/bench_pipeline.py [--notes 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from huey.consumer import Consumer
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pipeline_helpers import make_pipeline
from voicewatch import tasks
from voicewatch.config import Settings
from voicewatch.pipeline import runtime
from voicewatch.pipeline.intake import submit_note
from voicewatch.simulate import simulate_notes
from voicewatch.simulate_notes import DEMO_CLUBS, make_note
from voicewatch.store.tables import voice_note_artifacts


class TimedEmit:
    """Wraps an emit function and adds up the time spent inside it."""

    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner = inner
        self.total_ns = 0
        self.calls = 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter_ns()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.total_ns += time.perf_counter_ns() - start
            self.calls += 1


def stage_runs(notes: int, monitored: bool) -> tuple[float, TimedEmit, int]:
    """Run ``notes`` text notes synchronously; returns (seconds, emit timer, stage runs)."""
    workdir = Path(tempfile.mkdtemp(prefix="vw-bench-"))
    ctx, driver = make_pipeline(f"sqlite:///{workdir / 'p.db'}")
    timer = TimedEmit(ctx.emit if monitored else (lambda *a, **k: None))
    ctx.emit = timer
    rng = random.Random(1)
    runs = 0
    started = time.perf_counter()
    for _ in range(notes):
        club = DEMO_CLUBS[0]
        submit_note(ctx, organization_id="org_clg", coach_user_id="c1", text=make_note(rng, club))
        runs += driver.drain()
    elapsed = time.perf_counter() - started
    ctx.monitor.close()
    return elapsed, timer, runs


def throughput(notes: int) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="vw-bench-q-"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'q.db'}")
    huey = tasks.use_queue(settings.queue_url)
    ctx = runtime.build_context(settings)
    runtime.install(ctx)
    simulate_notes(ctx, settings, artifacts=1)  # seeds the clubs before the clock starts
    consumer = Consumer(huey, workers=2, worker_type="thread", periodic=False)
    consumer.start()
    time.sleep(1.0)
    started = time.perf_counter()
    ids = simulate_notes(ctx, settings, artifacts=notes, rng=random.Random(2))
    while True:
        with ctx.engine.connect() as conn:
            settled = conn.execute(
                select(func.count()).where(
                    voice_note_artifacts.c.artifact_id.in_(ids),
                    voice_note_artifacts.c.status.in_(["completed", "failed"]),
                )
            ).scalar_one()
        if settled == len(ids):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    consumer.stop(graceful=True)
    ctx.monitor.close()
    return len(ids) / elapsed * 60


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=300)
    args = parser.parse_args()
    on_s, on_timer, runs = stage_runs(args.notes, monitored=True)
    off_s, _, _ = stage_runs(args.notes, monitored=False)
    per_stage_us = on_timer.total_ns / 1000 / runs
    per_call_us = on_timer.total_ns / 1000 / max(on_timer.calls, 1)
    print(f"instrumentation: {on_timer.calls} emit() calls over {runs} stage runs")
    print(f"  time inside emit() per stage run: {per_stage_us:8.1f} µs")
    print(f"  time inside emit() per call:      {per_call_us:8.2f} µs")
    print(
        f"  mean stage wall time monitored {on_s / runs * 1000:.2f} ms, unmonitored "
        f"{off_s / runs * 1000:.2f} ms: +{(on_s - off_s) / runs * 1000:.2f} ms, which includes the"
        " background writer sharing the process (GIL, SQLite write lock)"
    )
    print("  goal: under 1 ms added per stage")
    rate = throughput(args.notes)
    print(f"throughput: {rate:,.0f} artifacts/minute on the embedded defaults")
    print("  (SQLite store, SQLite Huey queue, 2 worker threads, rules extractor, text notes)")


if __name__ == "__main__":
    main()
