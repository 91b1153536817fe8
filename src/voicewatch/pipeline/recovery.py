"""Artifacts stuck because a worker died or a queued task vanished.

A worker killed mid-stage (SIGKILL, a lost machine) leaves its artifact
claimed by a stage that will never finish: Huey does not redeliver a task
whose worker vanished. Every few minutes the periodic job looks for artifacts
whose running stage has made no progress for ``stale_after_ms`` and fails them
with a clear reason (``worker_lost``), so they show up as failed, raise the
failure-rate alert, and can be retried from the dashboard. The retry starts a
new attempt, so a late result from the lost worker could never land.

An artifact can also be stuck *between* stages: its last stage finished and
queued the next, and then the task itself was lost (a Redis restarted
without persistence, a queue file deleted). Nothing has gone wrong with the
artifact, so it is not failed: the next stage is queued again. That is safe
because a stage claims its artifact per attempt (``repository.claim_stage``):
if the first task turns up after all, whichever copy runs second does nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, select

from voicewatch.clock import now_ms
from voicewatch.model import ArtifactStatus
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.stages import PREVIOUS, fail_stage
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_note_artifacts as artifacts_t

log = logging.getLogger(__name__)

#: No progress for this long in one stage means its worker is gone.
STALE_AFTER_MS = 10 * 60_000
_RUNNING = (ArtifactStatus.TRANSCRIBING.value, ArtifactStatus.PROCESSING.value)
_SETTLED = (ArtifactStatus.COMPLETED.value, ArtifactStatus.FAILED.value)
#: The stage queued after each finished one.
_FOLLOWING: dict[str, str] = {str(previous): str(stage) for stage, previous in PREVIOUS.items()}


def find_stale(
    engine: Engine,
    *,
    now: int | None = None,
    stale_after_ms: int = STALE_AFTER_MS,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Artifacts whose running stage has not moved for ``stale_after_ms`` (oldest first)."""
    return _untouched_since(
        engine,
        now,
        stale_after_ms,
        limit,
        artifacts_t.c.status.in_(_RUNNING),
        artifacts_t.c.current_stage.is_not(None),
        artifacts_t.c.current_stage != artifacts_t.c.completed_stage,
    )


def _untouched_since(
    engine: Engine, now: int | None, stale_after_ms: int, limit: int, *conditions: Any
) -> list[dict[str, Any]]:
    """Artifacts matching ``conditions`` not updated for ``stale_after_ms``, oldest first."""
    now = now_ms() if now is None else now
    query = (
        select(artifacts_t)
        .where(artifacts_t.c.updated_at < now - stale_after_ms, *conditions)
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


def find_waiting(
    engine: Engine,
    *,
    now: int | None = None,
    stale_after_ms: int = STALE_AFTER_MS,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Artifacts that finished a stage ``stale_after_ms`` ago and never started the next."""
    return _untouched_since(
        engine,
        now,
        stale_after_ms,
        limit,
        artifacts_t.c.status.not_in(_SETTLED),
        artifacts_t.c.current_stage == artifacts_t.c.completed_stage,
        artifacts_t.c.completed_stage.in_(sorted(_FOLLOWING)),
    )


def requeue_waiting(
    ctx: PipelineContext, *, now: int | None = None, stale_after_ms: int = STALE_AFTER_MS
) -> list[str]:
    """Queue the next stage again for every artifact whose task was lost; returns their ids."""
    requeued = []
    for artifact in find_waiting(ctx.engine, now=now, stale_after_ms=stale_after_ms):
        stage = _FOLLOWING[artifact["completed_stage"]]
        log.warning(
            "voicewatch: %s waited %d s for its %s task; queued it again",
            artifact["artifact_id"],
            stale_after_ms // 1000,
            stage,
        )
        ctx.enqueue(stage, artifact["artifact_id"], artifact["attempt"])
        requeued.append(artifact["artifact_id"])
    return requeued


def recover(
    ctx: PipelineContext, *, now: int | None = None, stale_after_ms: int = STALE_AFTER_MS
) -> dict[str, list[str]]:
    """The periodic job's work: fail lost stages, requeue lost tasks."""
    return {
        "failed": fail_stale(ctx, now=now, stale_after_ms=stale_after_ms),
        "requeued": requeue_waiting(ctx, now=now, stale_after_ms=stale_after_ms),
    }
