"""Metrics benchmark: live figures, hourly aggregation and history on SQLite.

Prints figures, asserts nothing. The issue's goals:

  - ``metrics.realtime()`` under 2 ms with 100 and with 10,000,000 events stored
    (flat: live figures read counters, never the event log);
  - ``metrics.aggregate_hour()`` of 1,000,000 events in one hour under 3 s;
  - ``metrics.history("30d")`` under 20 ms.

The event log is generated with plain SQL (a recursive CTE of artifact stories:
received, status changes, the four stages with durations, metadata and costs,
completed; 1 in 20 fails in transcription), the secondary indexes are built
after the bulk insert, and the counters and artifact states are derived from
the same data, so they match. Everything lives in a temporary directory that
is removed at the end (the 10M-event file is ~2-3 GB while it exists).

    .venv/bin/python bench/bench_metrics.py [--events 10000000] [--hour-events 1000000]
                                             [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voicewatch import metrics
from voicewatch.clock import DAY_MS, HOUR_MS, MINUTE_MS
from voicewatch.store import make_engine, migrate
from voicewatch.store.tables import voice_pipeline_events as events_t

#: 2026-03-02T00:00:00Z: where the generated traffic starts.
START_MS = 1_772_409_600_000
EVENTS_PER_ARTIFACT = 12
#: The longest story lasts ~18.2 s; keep every story inside its period.
STORY_MS = 20_000

# slot, event type, stage, fixed offset (ms), how many stage durations precede it,
# which duration it reports (0 = none)
_TEMPLATE = [
    (0, "artifact_received", "ingestion", 0, 0, 0),
    (1, "artifact_status_changed", None, 10, 0, 0),
    (2, "transcription_started", "transcription", 100, 0, 0),
    (3, "transcription_completed", "transcription", 100, 1, 1),
    (4, "artifact_status_changed", None, 110, 1, 0),
    (5, "claims_extraction_started", "claims_extraction", 200, 1, 0),
    (6, "claims_extracted", "claims_extraction", 200, 2, 2),
    (7, "entity_resolution_started", "entity_resolution", 300, 2, 0),
    (8, "entity_resolution_completed", "entity_resolution", 300, 3, 3),
    (9, "draft_generation_started", "draft_generation", 400, 3, 0),
    (10, "drafts_generated", "draft_generation", 400, 4, 4),
    (11, "artifact_completed", None, 500, 4, 0),
]


def _template_sql() -> str:
    def lit(v: Any) -> str:
        return "NULL" if v is None else (f"'{v}'" if isinstance(v, str) else str(v))

    rows = " UNION ALL ".join("SELECT " + ", ".join(lit(v) for v in row) for row in _TEMPLATE)
    return f"tmpl(slot, event_type, stage, base, nd, di) AS ({rows})"


def _artifacts_sql(artifacts: int, start: int, span: int) -> str:
    """A CTE ``art`` of artifacts k with their start, four durations, org and fate."""
    return f"""
    n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k + 1 < {artifacts}),
    art AS (
      SELECT k,
             {start} + (k * {span}) / {artifacts} AS t0,
             2000 + (k * 7919) % 5000 AS d1,
             1500 + (k * 104729) % 4000 AS d2,
             200 + (k * 31) % 1000 AS d3,
             1000 + (k * 1299709) % 3000 AS d4,
             'org_' || (k % 3) AS org,
             (k % 20 = 7) AS fail
      FROM n)"""


def generate(path: Path, events: int, *, start: int, span: int) -> dict[str, Any]:
    """Fill a migrated SQLite file with ~``events`` events over [start, start + span)."""
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    # 19 in 20 artifacts complete (12 events), 1 in 20 fails in transcription (5 events)
    artifacts = max(1, events * 20 // (19 * EVENTS_PER_ARTIFACT + 5))
    started = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("PRAGMA synchronous=OFF; PRAGMA cache_size=-400000; PRAGMA temp_store=MEMORY;")
    indexes = sorted(events_t.indexes, key=lambda ix: ix.name or "")
    for ix in indexes:
        db.execute(f"DROP INDEX IF EXISTS {ix.name}")
    ctes = f"WITH RECURSIVE {_template_sql()}, {_artifacts_sql(artifacts, start, span)}"
    offset = (
        "t.base + (CASE WHEN t.nd >= 1 THEN a.d1 ELSE 0 END) + (CASE WHEN t.nd >= 2 THEN a.d2"
        " ELSE 0 END) + (CASE WHEN t.nd >= 3 THEN a.d3 ELSE 0 END)"
        " + (CASE WHEN t.nd >= 4 THEN a.d4 ELSE 0 END)"
    )
    db.execute("BEGIN")
    db.execute(
        f"""{ctes}
        INSERT INTO voice_pipeline_events (
          event_id, event_type, artifact_id, organization_id, pipeline_stage, duration_ms,
          claim_count, entity_count, disambiguation_count, draft_count, confidence_score,
          ai_model, ai_cost, timestamp, received_at)
        SELECT
          printf('e%010d-%02d', a.k, t.slot),
          CASE WHEN a.fail AND t.slot = 3 THEN 'transcription_failed'
               WHEN a.fail AND t.slot = 4 THEN 'artifact_failed' ELSE t.event_type END,
          'art' || a.k, a.org,
          CASE WHEN a.fail AND t.slot = 4 THEN 'transcription' ELSE t.stage END,
          CASE t.di WHEN 1 THEN a.d1 WHEN 2 THEN a.d2 WHEN 3 THEN a.d3 WHEN 4 THEN a.d4 END,
          CASE WHEN t.slot = 6 THEN 1 + a.k % 5 END,
          CASE WHEN t.slot = 8 THEN 1 + a.k % 5 END,
          CASE WHEN t.slot = 8 THEN 0 END,
          CASE WHEN t.slot = 10 THEN 1 + a.k % 5 END,
          CASE WHEN t.slot IN (3, 6) AND NOT a.fail THEN 0.8 + (a.k % 20) / 100.0 END,
          CASE WHEN t.slot IN (3, 6, 10) AND NOT a.fail THEN 'model' END,
          CASE WHEN t.slot = 3 AND NOT a.fail THEN 0.002 WHEN t.slot = 6 THEN 0.001
               WHEN t.slot = 10 THEN 0.003 END,
          a.t0 + {offset}, a.t0 + {offset}
        FROM art a CROSS JOIN tmpl t
        WHERE NOT a.fail OR t.slot <= 4
        ORDER BY a.k, t.slot"""
    )
    db.execute(
        f"""{ctes}
        INSERT INTO voice_pipeline_artifact_states (
          artifact_id, organization_id, state, current_stage, last_event_type, received_at,
          updated_at)
        SELECT 'art' || k, org, CASE WHEN fail THEN 'failed' ELSE 'completed' END,
               CASE WHEN fail THEN 'transcription' ELSE 'draft_generation' END,
               CASE WHEN fail THEN 'artifact_failed' ELSE 'artifact_completed' END,
               t0, t0 + 500 + d1 + d2 + d3 + d4
        FROM art"""
    )
    db.execute("COMMIT")
    inserted = time.perf_counter()
    for ix in indexes:
        cols = ", ".join(c.name for c in ix.columns)
        db.execute(f"CREATE INDEX {ix.name} ON {ix.table.name} ({cols})")
    indexed = time.perf_counter()
    # counters, exactly as log_events would have kept them: per organization first, then
    # platform-wide from those (a much smaller table than the events)
    db.execute("BEGIN")
    db.execute(
        """INSERT INTO voice_pipeline_counters
           SELECT organization_id, timestamp - timestamp % 60000, event_type,
                  coalesce(pipeline_stage, ''), count(*), coalesce(sum(duration_ms), 0)
           FROM voice_pipeline_events GROUP BY 1, 2, 3, 4"""
    )
    db.execute(
        """INSERT INTO voice_pipeline_counters
           SELECT organization_id, timestamp - timestamp % 60000, 'ai_cost', '', count(*),
                  sum(ai_cost)
           FROM voice_pipeline_events WHERE ai_cost IS NOT NULL GROUP BY 1, 2"""
    )
    db.execute(
        """INSERT INTO voice_pipeline_counters
           SELECT e.organization_id, e.timestamp - e.timestamp % 60000, 'e2e_latency', '',
                  count(*), sum(e.timestamp - s.received_at)
           FROM voice_pipeline_events e
           JOIN voice_pipeline_artifact_states s ON s.artifact_id = e.artifact_id
           WHERE e.event_type = 'artifact_completed' GROUP BY 1, 2"""
    )
    db.execute(
        """INSERT INTO voice_pipeline_counters
           SELECT '', bucket_start, counter_type, pipeline_stage, sum(count), sum(total)
           FROM voice_pipeline_counters GROUP BY 2, 3, 4"""
    )
    db.execute("COMMIT")
    done = time.perf_counter()
    stored = db.execute("SELECT count(*) FROM voice_pipeline_events").fetchone()[0]
    counters = db.execute("SELECT count(*) FROM voice_pipeline_counters").fetchone()[0]
    last = db.execute("SELECT max(timestamp) FROM voice_pipeline_events").fetchone()[0]
    db.close()
    return {
        "events": stored,
        "artifacts": artifacts,
        "counters": counters,
        "last_ms": last,
        "insert_s": inserted - started,
        "index_s": indexed - inserted,
        "counters_s": done - indexed,
        "total_s": done - started,
        "bytes": path.stat().st_size,
    }


def timings(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(median, p99) of ``calls`` calls, in ms, after 5 warm-up calls."""
    for _ in range(5):
        fn()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def bench_realtime(tmp: Path, events: int, calls: int) -> None:
    path = tmp / f"realtime_{events}.db"
    span = max(HOUR_MS, events * MINUTE_MS // 1000)  # ~1000 events a minute
    info = generate(path, events, start=START_MS, span=span)
    print(
        f"  generated {info['events']:,} events, {info['counters']:,} counter rows in "
        f"{info['total_s']:.1f} s (insert {info['insert_s']:.1f} s, indexes "
        f"{info['index_s']:.1f} s, counters {info['counters_s']:.1f} s); "
        f"file {info['bytes'] / 1e9:.2f} GB"
    )
    engine = make_engine(f"sqlite:///{path}")
    now = info["last_ms"]
    median, p99 = timings(lambda: metrics.realtime(engine, now=now), calls)
    figures = metrics.realtime(engine, now=now)
    print(
        f"  realtime(): median {median:.3f} ms, p99 {p99:.3f} ms over {calls} calls "
        f"(goal < 2 ms); last hour: {figures['artifacts_received']} received"
    )
    engine.dispose()
    path.unlink()


def bench_hour_and_history(tmp: Path, events: int, calls: int) -> None:
    path = tmp / "hour.db"
    hour = START_MS
    info = generate(path, events, start=hour, span=HOUR_MS - STORY_MS)
    print(f"  generated {info['events']:,} events in one hour in {info['total_s']:.1f} s")
    engine = make_engine(f"sqlite:///{path}")
    runs, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        rows = metrics.aggregate_hour(engine, hour, now_ms=hour + 2 * HOUR_MS)
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(
        f"  aggregate_hour(): {', '.join(f'{r:.2f}' for r in runs)} s wall "
        f"({', '.join(f'{c:.2f}' for c in cpu)} s CPU) for {info['events']:,} events "
        f"({rows} snapshot rows; goal < 3 s)"
    )
    snapshot = metrics.history(engine, "24h", now=hour + 2 * HOUR_MS)["snapshots"][0]
    print(
        f"    p95 end to end {snapshot['p95_end_to_end_latency']:.0f} ms, "
        f"{snapshot['artifacts_completed']:,} completed"
    )
    t0 = time.perf_counter()
    metrics.aggregate_day(engine, hour - hour % DAY_MS, now_ms=hour + DAY_MS)
    print(
        f"  aggregate_day() from its hourly snapshots: {(time.perf_counter() - t0) * 1000:.1f} ms"
    )
    # a realistic snapshot table: 7 days of hourly and 90 of daily rows (4 scopes each),
    # copies of the real rows just built, shifted in time
    db = sqlite3.connect(path, isolation_level=None)
    columns = [r[1] for r in db.execute("PRAGMA table_info(voice_pipeline_metrics_snapshots)")]
    copy = [c for c in columns if c not in ("id", "period_start", "period_end")]
    db.execute("BEGIN")
    for period_type, step, count in (("hourly", HOUR_MS, 7 * 24), ("daily", DAY_MS, 90)):
        base = hour if period_type == "hourly" else hour - hour % DAY_MS
        for i in range(1, count + 1):
            db.execute(
                f"""INSERT INTO voice_pipeline_metrics_snapshots
                    (period_start, period_end, {", ".join(copy)})
                    SELECT period_start - {i * step}, period_end - {i * step}, {", ".join(copy)}
                    FROM voice_pipeline_metrics_snapshots
                    WHERE period_type = '{period_type}' AND period_start = {base}"""
            )
    db.execute("COMMIT")
    total = db.execute("SELECT count(*) FROM voice_pipeline_metrics_snapshots").fetchone()[0]
    db.close()
    # "now": an hour after the real hour (24h reads it and 23 copies), and a day later (30d)
    nows = {"24h": hour + HOUR_MS, "30d": hour - hour % DAY_MS + DAY_MS + HOUR_MS}
    for range_name, now in nows.items():
        median, p99 = timings(lambda r=range_name, n=now: metrics.history(engine, r, now=n), calls)
        result = metrics.history(engine, range_name, now=now)
        print(
            f"  history('{range_name}'): median {median:.2f} ms, p99 {p99:.2f} ms "
            f"({len(result['snapshots'])} snapshots of {total:,} stored; goal < 20 ms)"
        )
    now = nows["30d"]
    median, p99 = timings(lambda: metrics.org_breakdown(engine, "30d", now=now), calls)
    print(f"  org_breakdown('30d'): median {median:.2f} ms, p99 {p99:.2f} ms")
    hour_now = nows["24h"]
    median, p99 = timings(lambda: metrics.stage_breakdown(engine, hour_now), min(calls, 50))
    print(f"  stage_breakdown() from 24 hourly snapshots: median {median:.2f} ms, p99 {p99:.2f} ms")
    engine.dispose()
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="the big realtime case")
    parser.add_argument("--hour-events", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (figures are wall time)")
    with tempfile.TemporaryDirectory(prefix="voicewatch-bench-") as tmp:
        print("hourly aggregation and history (SQLite)")
        bench_hour_and_history(Path(tmp), args.hour_events, args.calls)
        for events in (100, args.events):
            print(f"realtime with {events:,} events stored (SQLite)")
            bench_realtime(Path(tmp), events, args.calls)


if __name__ == "__main__":
    main()
