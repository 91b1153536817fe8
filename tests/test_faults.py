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
