"""Artifacts stuck in a stage because the worker running it died.

A worker killed mid-stage (SIGKILL, a lost machine) leaves its artifact
claimed by a stage that will never finish: Huey does not redeliver a task
whose worker vanished. Every few minutes the periodic job looks for artifacts
whose running stage has made no progress for ``stale_after_ms`` and fails them
with a clear reason (``worker_lost``), so they show up as failed, raise the
failure-rate alert, and can be retried from the dashboard. The retry starts a
new attempt, so a late result from the lost worker could never land.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, select

from voicewatch.clock import now_ms
from voicewatch.model import ArtifactStatus
from voicewatch.pipeline.stages import PipelineContext, fail_stage
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_note_artifacts as artifacts_t

#: No progress for this long in one stage means its worker is gone.
STALE_AFTER_MS = 10 * 60_000
_RUNNING = (ArtifactStatus.TRANSCRIBING.value, ArtifactStatus.PROCESSING.value)


def find_stale(
    engine: Engine,
    *,
    now: int | None = None,
    stale_after_ms: int = STALE_AFTER_MS,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Artifacts whose running stage has not moved for ``stale_after_ms`` (oldest first)."""
    now = now_ms() if now is None else now
    query = (
        select(artifacts_t)
        .where(
            artifacts_t.c.status.in_(_RUNNING),
            artifacts_t.c.updated_at < now - stale_after_ms,
            and_(
                artifacts_t.c.current_stage.is_not(None),
                artifacts_t.c.current_stage != artifacts_t.c.completed_stage,
            ),
        )
        .order_by(artifacts_t.c.updated_at)
        .limit(limit)
    )
    with read_connection(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def fail_stale(
    ctx: PipelineContext, *, now: int | None = None, stale_after_ms: int = STALE_AFTER_MS
) -> list[str]:
    """Fail every stale artifact with ``worker_lost``; returns their ids."""
    failed = []
    for artifact in find_stale(ctx.engine, now=now, stale_after_ms=stale_after_ms):
        message = (
            f"the worker running {artifact['current_stage']} was lost "
            f"(no progress for {stale_after_ms // 1000} s); retry it"
        )
        if fail_stage(
            ctx, artifact, artifact["attempt"], artifact["current_stage"], message, "worker_lost"
        ):
            failed.append(artifact["artifact_id"])
    return failed
