"""What the guard rails cost one AI call: budgets, rate limit, breaker, usage log.

Run: ``.venv/bin/python bench/bench_guards.py [--calls 500] [--db URL]``. Prints, never asserts.

A ``GuardedCall`` around a call that does nothing, so what is timed is the
guards' own reads and writes: without budgets (two reads, the rate-limit
upsert, the breaker's success, the usage row) and with an organization and a
platform budget (plus two spend updates). SQLite file in a temp directory by
default.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.pipeline import budgets
from voicewatch.pipeline.providers import GuardedCall
from voicewatch.pipeline.transcription import Usage
from voicewatch.store import make_engine, migrate
from voicewatch.store.tables import PLATFORM


def _run(guard: GuardedCall, calls: int) -> list[float]:
    artifact = {"organization_id": "org_bench", "artifact_id": "art_bench", "attempt": 0}
    usage = Usage(model="rules", input_tokens=120, output_tokens=60)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        guard(artifact, "claims_extraction", lambda: (None, usage))
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    engine = make_engine(url)
    migrate(engine)
    settings = Settings(database_url=url, rate_limit_per_minute=10**6)
    guard = GuardedCall(engine, "claims", None, stage="claims_extraction", settings=settings)
    for label, setup in (
        ("no budgets", lambda: None),
        (
            "org + platform budget",
            lambda: [
                budgets.set_budget(engine, s, 10**6, now_ms=now_ms())
                for s in ("org_bench", PLATFORM)
            ],
        ),
    ):
        setup()
        _run(guard, 20)  # warm up
        times = sorted(_run(guard, args.calls))
        print(
            f"{label:<22} {args.calls} calls: median {statistics.median(times):.2f} ms,"
            f" p95 {times[int(len(times) * 0.95)]:.2f} ms per guarded call ({url.split(':')[0]})"
        )


if __name__ == "__main__":
    main()
