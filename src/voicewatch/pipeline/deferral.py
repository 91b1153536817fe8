"""A stage refused by a rate limit is put off until its window opens, not failed.

Why: a burst over an organization's rate limit is not an error; the notes only
have to wait a minute. The stage gives its claim back (the artifact returns to
the status it had before the stage started, so the re-queued task can claim
it again), says ``rate_limit_hit`` for that note with the time it will run,
and is queued again for that time (``ctx.defer``). A note that is still limited
``horizon_ms`` after its first deferral fails instead, with the reason, and can
be retried like any failed stage.

``stage_deferrals`` keeps, per artifact, attempt and stage, when it was first
deferred: that survives worker restarts, and it is what the horizon is judged
against. Event ids carry the deferral's number, so each deferral is one event
and a re-delivered task cannot count one twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select, update

from voicewatch.clock import to_iso
from voicewatch.pipeline.guard import dialect_insert
from voicewatch.store import write_transaction
from voicewatch.store.tables import stage_deferrals as deferrals_t
from voicewatch.store.tables import voice_note_artifacts as artifacts_t

#: Used when the context does not say (``Settings.rate_limit_horizon_ms``).
DEFAULT_HORIZON_MS = 15 * 60_000


class DeferredTooLong(Exception):
    """The note stayed rate limited past the horizon: the stage fails (retryable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.error_code = "rate_limited"


def record(
    engine: Engine, artifact_id: str, attempt: int, stage: str, now_ms: int, until_ms: int
) -> tuple[int, int]:
    """Count one deferral; returns (first deferred at, number of this deferral)."""
    with write_transaction(engine) as conn:
        conn.execute(
            dialect_insert(conn, deferrals_t)
            .values(
                artifact_id=artifact_id,
                attempt=attempt,
                stage=stage,
                first_deferred_at=now_ms,
                deferred_until=until_ms,
                deferrals=0,
            )
            .on_conflict_do_nothing(index_elements=["artifact_id", "attempt", "stage"])
        )
        key = (
            (deferrals_t.c.artifact_id == artifact_id)
            & (deferrals_t.c.attempt == attempt)
            & (deferrals_t.c.stage == stage)
        )
        conn.execute(
            update(deferrals_t)
            .where(key)
            .values(deferrals=deferrals_t.c.deferrals + 1, deferred_until=until_ms)
        )
        row = conn.execute(
            select(deferrals_t.c.first_deferred_at, deferrals_t.c.deferrals).where(key)
        ).one()
    return int(row.first_deferred_at), int(row.deferrals)


def release(engine: Engine, before: dict[str, Any], attempt: int, stage: str) -> bool:
    """Give the stage's claim back: status and current stage as before it was claimed."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(artifacts_t)
            .where(
                artifacts_t.c.artifact_id == before["artifact_id"],
                artifacts_t.c.attempt == attempt,
                artifacts_t.c.current_stage == stage,
            )
            .values(status=before["status"], current_stage=before["current_stage"])
        )
    return bool(result.rowcount)


def defer_stage(
    ctx: Any,
    artifact: dict[str, Any],
    before: dict[str, Any],
    attempt: int,
    stage: str,
    refusal: Any,
) -> Exception | None:
    """Put the stage off until ``refusal.until_ms``; None when done, else what to fail with.

    ``refusal`` is the guard's ``RateLimited`` (``now_ms``, ``until_ms``, message).
    """
    horizon = int(getattr(ctx, "rate_limit_horizon_ms", DEFAULT_HORIZON_MS))
    artifact_id = artifact["artifact_id"]
    first, number = record(
        ctx.engine, artifact_id, attempt, stage, refusal.now_ms, refusal.until_ms
    )
    defer = getattr(ctx, "defer", None)
    if refusal.until_ms - first > horizon or defer is None:
        waited = (refusal.now_ms - first) // 1000
        return DeferredTooLong(
            f"{refusal}; the note was deferred {number - 1} time(s) over {waited} s and would"
            f" still wait past the {horizon // 1000} s horizon: retry it once traffic is lower"
        )
    if not release(ctx.engine, before, attempt, stage):
        return None  # the artifact moved on meanwhile (a retry, a recovery): nothing to do
    ctx.emit(
        "rate_limit_hit",
        event_id=f"{artifact_id}.{attempt}.rate_limit_hit.{stage}.{number}",
        artifact_id=artifact_id,
        voice_note_id=artifact.get("voice_note_id"),
        organization_id=artifact["organization_id"],
        coach_user_id=artifact["coach_user_id"],
        pipeline_stage=stage,
        error_code="rate_limited",
        error_message=(
            f"{refusal}; {stage} deferred until {to_iso(refusal.until_ms)} (deferral {number})"
        ),
        metadata={"retry_attempt": attempt} if attempt else None,
        timestamp=refusal.now_ms,
    )
    defer(stage, artifact_id, attempt, refusal.until_ms)
    return None
