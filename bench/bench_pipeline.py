"""Pipeline benchmarks (figures printed, not asserted).

1. Instrumentation cost: the time each stage spends inside ``emit()`` (the only
   way the pipeline reaches the harness), per stage run; and the mean stage
   time with the real emitter versus with monitoring switched off.
2. Throughput: text notes per minute through the real pipeline on the embedded
   defaults (SQLite store, SQLite Huey queue, two worker threads, rules
   extractor), from first submit to last artifact settled.

Run: .venv/bin/python bench/bench_pipeline.py [--notes 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from huey.consumer import Consumer
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pipeline_helpers import make_pipeline
from voicewatch import tasks, worker
from voicewatch.config import Settings
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


def stage_runs(notes: int, monitored: bool) -> tuple[float, float, TimedEmit, int]:
    """Run ``notes`` text notes synchronously.

    Returns (wall seconds, this process's CPU seconds, emit timer, stage runs).
    The CPU figure counts the background writer too (same process), and unlike
    the wall clock it is not inflated by other processes on a shared machine.
    """
    workdir = Path(tempfile.mkdtemp(prefix="vw-bench-"))
    ctx, driver = make_pipeline(f"sqlite:///{workdir / 'p.db'}")
    timer = TimedEmit(ctx.emit if monitored else (lambda *a, **k: None))
    ctx.emit = timer
    rng = random.Random(1)
    runs = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for _ in range(notes):
        club = DEMO_CLUBS[0]
        submit_note(ctx, organization_id="org_clg", coach_user_id="c1", text=make_note(rng, club))
        runs += driver.drain()
    ctx.monitor.flush()  # the writer's work belongs to the monitored run
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    ctx.monitor.close()
    return elapsed, cpu, timer, runs


def throughput(notes: int) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="vw-bench-q-"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'q.db'}")
    ctx = worker.start(settings)
    huey = tasks.huey
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
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-throughput", action="store_true", help="only the stage overhead")
    args = parser.parse_args()
    # Alternate monitored and unmonitored runs and take medians, so a burst of
    # other work on the machine lands on both sides rather than on one.
    on_wall, on_cpu, off_wall, off_cpu = [], [], [], []
    on_timer, runs = None, 1
    for _ in range(args.rounds):
        wall, cpu, on_timer, runs = stage_runs(args.notes, monitored=True)
        on_wall.append(wall / runs * 1000)
        on_cpu.append(cpu / runs * 1000)
        wall, cpu, _, _ = stage_runs(args.notes, monitored=False)
        off_wall.append(wall / runs * 1000)
        off_cpu.append(cpu / runs * 1000)
    assert on_timer is not None
    per_stage_us = on_timer.total_ns / 1000 / runs
    per_call_us = on_timer.total_ns / 1000 / max(on_timer.calls, 1)
    med = statistics.median
    print(f"instrumentation: {on_timer.calls} emit() calls over {runs} stage runs")
    print(f"  time inside emit() per stage run: {per_stage_us:8.1f} µs")
    print(f"  time inside emit() per call:      {per_call_us:8.2f} µs")
    print(
        f"  stage wall time, median of {args.rounds} alternating runs: monitored "
        f"{med(on_wall):.2f} ms, unmonitored {med(off_wall):.2f} ms: "
        f"+{med(on_wall) - med(off_wall):.2f} ms (includes the background writer's batches)"
    )
    print(
        f"  stage CPU time (this process, writer included): monitored {med(on_cpu):.2f} ms, "
        f"unmonitored {med(off_cpu):.2f} ms: +{med(on_cpu) - med(off_cpu):.2f} ms"
    )
    print("  goal: under 1 ms added per stage")
    if args.no_throughput:
        return
    rate = throughput(args.notes)
    print(f"throughput: {rate:,.0f} artifacts/minute on the embedded defaults")
    print("  (SQLite store, SQLite Huey queue, 2 worker threads, rules extractor, text notes)")


if __name__ == "__main__":
    main()
