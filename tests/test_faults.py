"""Faults: a worker killed with SIGKILL mid-stage leaves nothing stuck or lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from voicewatch import events, tasks
from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline import runtime
from voicewatch.pipeline.intake import submit_note
from voicewatch.pipeline.recovery import fail_stale, find_stale
from voicewatch.retry import start_retry
from voicewatch.simulate import seed_demo_clubs


def _worker(settings: Settings, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full_env = {
        **os.environ,
        "VOICEWATCH_DATABASE_URL": settings.database_url,
        "VOICEWATCH_QUEUE_URL": settings.queue_url,
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "voicewatch.cli", "worker", "--no-periodic", "--workers", "1"],
        env=full_env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_killed_mid_stage_is_detected_and_the_retry_completes(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vw.db'}")
    tasks.use_queue(settings.queue_url)
    ctx = runtime.build_context(settings)
    seed_demo_clubs(ctx.engine)
    log = tmp_path / "worker.log"
    doomed = _worker(settings, log, VOICEWATCH_STAGE_DELAY_MS="transcription=30000")
    try:
        artifact = submit_note(
            ctx,
            organization_id="org_clg",
            coach_user_id="coach_clg_1",
            text="Sean Murphy hurt his ankle.",
        )
        artifact_id = artifact["artifact_id"]
        assert _wait_for(
            lambda: repo.get_artifact(ctx.engine, artifact_id)["status"] == "transcribing", 30
        ), log.read_text()
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "transcribing"  # stuck
    assert find_stale(ctx.engine, now=now_ms()) == []  # not yet stale
    later = now_ms() + 11 * 60_000
    assert [a["artifact_id"] for a in find_stale(ctx.engine, now=later)] == [artifact_id]
    assert fail_stale(ctx, now=later) == [artifact_id]
    row = repo.get_artifact(ctx.engine, artifact_id)
    assert row["status"] == "failed" and row["error_code"] == "worker_lost"
    assert "transcription" in row["error_message"]
    assert fail_stale(ctx, now=later) == []  # once
    healthy = _worker(settings, log)
    try:
        start_retry(
            ctx.engine, artifact_id, "transcription", requested_by="ops", enqueue=ctx.enqueue
        )
        assert _wait_for(
            lambda: repo.get_artifact(ctx.engine, artifact_id)["status"] == "completed", 60
        ), log.read_text()[-2000:]
        ctx.monitor.flush(timeout=10)
        assert _wait_for(
            lambda: (
                "retry_succeeded"
                in [e["event_type"] for e in events.artifact_timeline(ctx.engine, artifact_id)]
            ),
            15,
        )
    finally:
        healthy.terminate()
        healthy.wait(timeout=20)
    kinds = [e["event_type"] for e in events.artifact_timeline(ctx.engine, artifact_id)]
    assert kinds.count("artifact_received") == 1
    assert kinds.count("transcription_failed") == 1 and kinds.count("artifact_failed") == 1
    assert kinds.count("artifact_completed") == 1
    ctx.monitor.close()


def _serve(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "voicewatch.cli", "--db", db_url, "serve", "--port", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_the_server_killed_during_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """SIGKILL the server while an SDK streams batches to it; restart it; every event lands once."""
    import socket

    import httpx
    from sqlalchemy import func, select

    from voicewatch.auth import create_token
    from voicewatch.emitter import Monitor
    from voicewatch.store import open_store
    from voicewatch.store.tables import voice_pipeline_counters, voice_pipeline_events

    db_url = f"sqlite:///{tmp_path / 'srv.db'}"
    engine = open_store(db_url)
    token = create_token(engine, scope="ingest", name="sdk")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    server = _serve(db_url, port, log)
    assert _wait_for(up, 30), log.read_text()
    monitor = Monitor(endpoint=url, token=token)
    sent = 0
    try:
        start = now_ms()
        for i in range(3000):
            monitor.emit("transcription_started", artifact_id=f"a{i % 50}", timestamp=start + i)
            sent += 1
            if i == 1500:
                os.kill(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
                time.sleep(1.0)
                server = _serve(db_url, port, log)
        assert _wait_for(up, 30), log.read_text()
        assert monitor.flush(timeout=60)
    finally:
        monitor.close(timeout=30)
        server.terminate()
        server.wait(timeout=20)
    stats = monitor.stats()
    assert stats["dropped"] == 0
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(voice_pipeline_events)).scalar_one()
        counted = conn.execute(
            select(func.sum(voice_pipeline_counters.c.count)).where(
                voice_pipeline_counters.c.scope == "",
                voice_pipeline_counters.c.counter_type == "transcription_started",
            )
        ).scalar_one()
    assert stored == sent == 3000
    assert counted == 3000  # counters equal a recount: nothing double-counted on the retry
    engine.dispose()
