"""Staff retries of a failed artifact: one stage, or the full pipeline.

A retry opens a new *attempt* of the artifact: the attempt number goes up,
the artifact is reset (by the pipeline's facade, which owns that table) to
the status that stage starts from, a
``retry_attempts`` row records who asked and when, ``retry_initiated`` is
logged, and the stage is queued. The stages themselves end the retry
(``retry_succeeded`` / ``retry_failed``) because only they know how it ended.
Because every stage claims its work by attempt number, tasks of the old
attempt still in the queue do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from voicewatch.clock import now_ms
from voicewatch.events import log_events
from voicewatch.model import ArtifactStatus, Stage
from voicewatch.pipeline import facade
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import retry_attempts

#: What each retry resets the artifact to: (status, last completed stage, stage to queue).
RETRY_PLANS: dict[str, tuple[str, str, str]] = {
    "full": (ArtifactStatus.RECEIVED.value, Stage.INGESTION.value, Stage.TRANSCRIPTION.value),
    "transcription": (
        ArtifactStatus.RECEIVED.value,
        Stage.INGESTION.value,
        Stage.TRANSCRIPTION.value,
    ),
    "claims_extraction": (
        ArtifactStatus.TRANSCRIBED.value,
        Stage.TRANSCRIPTION.value,
        Stage.CLAIMS_EXTRACTION.value,
    ),
    "entity_resolution": (
        ArtifactStatus.PROCESSING.value,
        Stage.CLAIMS_EXTRACTION.value,
        Stage.ENTITY_RESOLUTION.value,
    ),
}
_ORDER = [s.value for s in Stage]


class RetryError(Exception):
    """A retry cannot start; ``status`` is the HTTP status that says why (404 or 409)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryStarted:
    artifact_id: str
    retry_attempt: int
    stage: str


def start_retry(
    engine: Engine,
    artifact_id: str,
    stage: str,
    *,
    requested_by: str,
    enqueue: Callable[[str, str, int], None],
    now: int | None = None,
) -> RetryStarted:
    """Retry ``stage`` ("full" for the whole pipeline) of a failed artifact.

    :raises RetryError: 404 for an unknown artifact; 409 when it has not
        failed, a retry is still running, or the stage cannot run yet because
        an earlier one never completed.
    """
    if stage not in RETRY_PLANS:
        raise RetryError(f"stage must be one of {', '.join(RETRY_PLANS)}", 422)
    status, completed_before, queued_stage = RETRY_PLANS[stage]
    stamp = now_ms() if now is None else now
    with write_transaction(engine) as conn:
        artifact = facade.lock_artifact(conn, artifact_id)
        attempt = _next_attempt(conn, artifact, stage, completed_before)
        conn.execute(
            retry_attempts.insert().values(
                artifact_id=artifact_id,
                attempt=attempt,
                stage=stage,
                status="running",
                requested_by=requested_by[:320],
                started_at=stamp,
            )
        )
        facade.reset_for_retry(
            conn,
            artifact_id,
            attempt=attempt,
            status=status,
            completed_stage=completed_before,
            now=stamp,
        )
    log_events(engine, [_initiated(artifact, attempt, queued_stage, status, stamp)])
    try:
        enqueue(queued_stage, artifact_id, attempt)
    except Exception as exc:
        _abandon(engine, artifact_id, attempt, f"could not queue the retry: {exc}")
        raise RetryError(f"could not queue the retry: {exc}", 503) from exc
    return RetryStarted(artifact_id, attempt, stage)


def _next_attempt(conn: Connection, artifact: Any, stage: str, completed_before: str) -> int:
    """The new attempt's number, once the artifact is known to be retryable (else RetryError)."""
    if artifact is None:
        raise RetryError("unknown artifact", 404)
    artifact_id = artifact.artifact_id
    running = conn.execute(
        select(retry_attempts.c.attempt).where(
            retry_attempts.c.artifact_id == artifact_id, retry_attempts.c.status == "running"
        )
    ).first()
    if running is not None:
        raise RetryError(f"retry {running.attempt} of this artifact is still running", 409)
    if artifact.status != ArtifactStatus.FAILED.value:
        raise RetryError(
            f"only failed artifacts can be retried (this one is {artifact.status})", 409
        )
    reached = artifact.completed_stage or Stage.INGESTION.value
    if _ORDER.index(completed_before) > _ORDER.index(reached):
        raise RetryError(f"cannot retry {stage}: the artifact never got past {reached}", 409)
    last = conn.execute(
        select(func.max(retry_attempts.c.attempt)).where(
            retry_attempts.c.artifact_id == artifact_id
        )
    ).scalar()
    return max(int(last or 0), int(artifact.attempt)) + 1


def _initiated(
    artifact: Any, attempt: int, queued_stage: str, status: str, stamp: int
) -> dict[str, Any]:
    """The ``retry_initiated`` event of a retry that just started."""
    return {
        "event_id": f"{artifact.artifact_id}.{attempt}.retry_initiated",
        "event_type": "retry_initiated",
        "artifact_id": artifact.artifact_id,
        "organization_id": artifact.organization_id,
        "coach_user_id": artifact.coach_user_id,
        "pipeline_stage": queued_stage,
        "previous_status": ArtifactStatus.FAILED.value,
        "new_status": status,
        "metadata": {"retry_attempt": attempt},
        "timestamp": stamp,
    }


def _abandon(engine: Engine, artifact_id: str, attempt: int, reason: str) -> None:
    """Undo a retry whose task could not be queued: the artifact is failed again."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(retry_attempts)
            .where(retry_attempts.c.artifact_id == artifact_id, retry_attempts.c.attempt == attempt)
            .values(status="failed", error_message=reason[:4000], finished_at=now_ms())
        )
        facade.abandon_retry(conn, artifact_id, reason)


def finish_retry(
    engine: Engine, artifact_id: str, attempt: int, *, ok: bool, error: str | None = None
) -> None:
    """Record how retry ``attempt`` of an artifact ended (no-op when no retry row exists).

    The stages know how a retry ended; the composition root hands them this
    function (``PipelineContext.finish_retry``), so ``retry_attempts`` has one writer.
    """
    with write_transaction(engine) as conn:
        conn.execute(
            update(retry_attempts)
            .where(
                retry_attempts.c.artifact_id == artifact_id,
                retry_attempts.c.attempt == attempt,
                retry_attempts.c.status == "running",
            )
            .values(
                status="succeeded" if ok else "failed",
                error_message=(error or None) and error[:4000],
                finished_at=now_ms(),
            )
        )


def retry_history(engine: Engine, artifact_id: str) -> list[dict[str, Any]]:
    """Every retry of an artifact, oldest first, with who asked and how it ended."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(retry_attempts)
            .where(retry_attempts.c.artifact_id == artifact_id)
            .order_by(retry_attempts.c.attempt)
        )
        return [dict(r._mapping) for r in rows]
