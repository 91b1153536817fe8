"""Pipeline stages on the real Huey queue: embedded SQLite, and Redis with two worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from huey.consumer import Consumer
from sqlalchemy import func, select

from conftest import POSTGRES_URL, REDIS_URL, require_postgres, reset_postgres
from services import unavailable
from voicewatch import event_queries, worker
from voicewatch.config import Settings
from voicewatch.pipeline import repository as repo
from voicewatch.simulate import simulate_notes
from voicewatch.store.tables import voice_note_artifacts, voice_pipeline_events
from voicewatch.worker import build_context


def _wait_until_settled(engine, ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            statuses = dict(
                conn.execute(
                    select(voice_note_artifacts.c.artifact_id, voice_note_artifacts.c.status).where(
                        voice_note_artifacts.c.artifact_id.in_(ids)
                    )
                ).all()
            )
        if len(statuses) == len(ids) and all(
            s in ("completed", "failed") for s in statuses.values()
        ):
            return statuses
        time.sleep(0.2)
    return statuses


def test_a_note_runs_through_huey_on_the_embedded_sqlite_queue(tmp_path: Path) -> None:
    from voicewatch import tasks

    db_url = f"sqlite:///{tmp_path / 'vw.db'}"
    settings = Settings(database_url=db_url)
    previous_queue = tasks._queue_url
    huey = tasks.use_queue(settings.queue_url)
    ctx = build_context(settings)
    worker.install(settings, ctx)  # the consumer threads run stages with this context
    consumer = Consumer(huey, workers=2, worker_type="thread", periodic=False)
    consumer.start()
    try:
        ids = simulate_notes(ctx, settings, artifacts=5)
        statuses = _wait_until_settled(ctx.engine, ids, timeout=60)
    finally:
        consumer.stop(graceful=True)
        # Later tests (in any order) must not find this test's queue and context.
        tasks.use_queue(previous_queue)
        worker.uninstall()
    assert statuses == {i: "completed" for i in ids}
    assert ctx.monitor.flush(timeout=30)
    for artifact_id in ids:
        kinds = [e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact_id)]
        assert kinds[0] == "artifact_received" and kinds[-1] == "artifact_completed"
    ctx.monitor.close()


def _wait_for_endings(engine, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            ended = conn.execute(
                select(func.count())
                .select_from(voice_pipeline_events)
                .where(
                    voice_pipeline_events.c.event_type.in_(
                        ["artifact_completed", "artifact_failed"]
                    )
                )
            ).scalar_one()
        if ended >= expected:
            return
        time.sleep(0.2)


def _redis_ok() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
        return None
    except Exception as exc:
        return str(exc)


def test_two_worker_processes_on_postgresql_and_redis(tmp_path: Path) -> None:
    require_postgres()
    problem = _redis_ok()
    if problem:
        unavailable(f"Redis at {REDIS_URL} is not reachable: {problem}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    engine = reset_postgres()
    engine.dispose()
    env = {**os.environ, "VOICEWATCH_DATABASE_URL": POSTGRES_URL, "VOICEWATCH_QUEUE_URL": REDIS_URL}
    env["VOICEWATCH_AUDIO_DIR"] = str(tmp_path / "audio")
    logs = [(tmp_path / f"worker{i}.log").open("wb") for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "voicewatch.cli", "worker", "--no-periodic", "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    from voicewatch import tasks

    settings = Settings(
        database_url=POSTGRES_URL, queue_url=REDIS_URL, audio_dir=str(tmp_path / "audio")
    )
    previous_queue = tasks._queue_url
    tasks.use_queue(REDIS_URL)
    ctx = build_context(settings)
    try:
        ids = simulate_notes(ctx, settings, artifacts=200, failure_rate=0.1)
        statuses = _wait_until_settled(ctx.engine, ids, timeout=240)
        _wait_for_endings(ctx.engine, 200, timeout=30)  # the workers' emitters flush in batches
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
        tasks.use_queue(previous_queue)  # later tests must not queue onto this Redis
    assert ctx.monitor.flush(timeout=60)
    assert len(statuses) == 200, "an artifact was lost"
    assert set(statuses.values()) <= {"completed", "failed"}
    failed = [i for i, s in statuses.items() if s == "failed"]
    assert 0 < len(failed) < 60
    with ctx.engine.connect() as conn:
        received = conn.execute(
            select(func.count())
            .select_from(voice_pipeline_events)
            .where(voice_pipeline_events.c.event_type == "artifact_received")
        ).scalar_one()
        completed_events = conn.execute(
            select(voice_pipeline_events.c.artifact_id, func.count())
            .where(
                voice_pipeline_events.c.event_type.in_(["artifact_completed", "artifact_failed"])
            )
            .group_by(voice_pipeline_events.c.artifact_id)
        ).all()
    assert received == 200
    assert len(completed_events) == 200 and all(n == 1 for _, n in completed_events), (
        "an artifact ended twice"
    )
    for artifact_id in ids[:50]:
        kinds = [e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact_id)]
        if statuses[artifact_id] == "completed":
            for needed in ("transcription_completed", "claims_extracted", "drafts_generated"):
                assert needed in kinds, (artifact_id, kinds)
    assert repo.get_artifact(ctx.engine, ids[0]) is not None
    ctx.monitor.close()
