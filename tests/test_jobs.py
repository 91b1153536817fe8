"""Periodic jobs: run once per slot across workers, catch up gaps, fire at UTC times."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

from sqlalchemy import Engine, func, select

from voicewatch import jobs, tasks
from voicewatch.clock import HOUR_MS, parse_iso_ms
from voicewatch.events import log_events
from voicewatch.store.tables import job_runs
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snaps

NOW = parse_iso_ms("2026-11-23T14:31:00Z")


def _event(i: int, ts: int) -> dict[str, object]:
    return {
        "event_id": f"j{i}",
        "event_type": "artifact_received",
        "artifact_id": f"a{i}",
        "timestamp": ts,
    }


def test_a_slot_is_claimed_by_exactly_one_caller(engine: Engine) -> None:
    assert jobs.claim(engine, "aggregate_hourly", "2026-11-23-14", now=NOW) is True
    assert jobs.claim(engine, "aggregate_hourly", "2026-11-23-14", now=NOW) is False
    assert jobs.claim(engine, "aggregate_hourly", "2026-11-23-15", now=NOW) is True


def test_two_processes_claiming_at_once_run_the_job_once(db_url: str) -> None:
    script = (
        "import sys; from voicewatch.store import make_engine; from voicewatch import jobs;"
        "e = make_engine(sys.argv[1]);"
        "print(sum(jobs.claim(e, 'race', f'k{i}') for i in range(200)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, db_url], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    wins = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert sum(wins) == 200


def test_the_hourly_job_backfills_a_five_hour_gap(engine: Engine) -> None:
    first_hour = NOW - NOW % HOUR_MS - 6 * HOUR_MS
    log_events(engine, [_event(i, first_hour + i * HOUR_MS + 60_000) for i in range(6)])
    done = jobs.hourly_aggregation(engine, NOW)
    assert done is not None
    assert [first_hour + i * HOUR_MS for i in range(6)] == [h for h in done if h >= first_hour][:6]
    with engine.connect() as conn:
        platform = conn.execute(
            select(snaps.c.period_start, snaps.c.artifacts_received)
            .where(snaps.c.period_type == "hourly", snaps.c.scope == "")
            .order_by(snaps.c.period_start)
        ).all()
    assert [(start, n) for start, n in platform if start >= first_hour] == [
        (first_hour + i * HOUR_MS, 1) for i in range(6)
    ]
    # the same slot again does nothing: another worker already ran it
    assert jobs.hourly_aggregation(engine, NOW) is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(job_runs)).scalar_one() == 1


def test_periodic_tasks_fire_at_their_utc_times() -> None:
    def fires(task: object, iso: str) -> bool:
        return bool(task.task_class().validate_datetime(datetime.fromisoformat(iso)))  # type: ignore[attr-defined]

    assert fires(tasks.aggregate_hourly_task, "2026-11-23T14:30:00")
    assert not fires(tasks.aggregate_hourly_task, "2026-11-23T14:00:00")
    assert fires(tasks.aggregate_daily_task, "2026-11-23T01:30:00")
    assert not fires(tasks.aggregate_daily_task, "2026-11-23T02:30:00")
    assert fires(tasks.check_health_task, "2026-11-23T14:35:00")
    assert not fires(tasks.check_health_task, "2026-11-23T14:36:00")
    assert fires(tasks.cleanup_task, "2026-11-22T04:30:00")  # a Sunday
    assert not fires(tasks.cleanup_task, "2026-11-23T04:30:00")  # a Monday
