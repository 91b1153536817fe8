"""The four processing stages of a voice note, each idempotent per artifact and attempt.

A stage first *claims* the artifact (an atomic UPDATE guarded by attempt and
the last completed stage), so a duplicate or stale task does nothing. Its
outputs replace any earlier ones in the same transaction that marks the stage
done, and every event it emits has an id derived from the artifact, the
attempt and the event, so a re-emitted event is a duplicate the store ignores.

Transient store errors (``store.transient``): before the claim nothing has
changed, so they propagate and the task queue runs the task again later
(``tasks``). After the claim the stage is ours alone, so each store step is
retried in place (``_in_place``) with the same bounded backoff: the reads and
the provider call together (the provider is called again only when its own
bookkeeping in the store failed), then the output transaction, which is
idempotent. A stage is never run again by the queue for the same attempt: a
retried task finds the artifact claimed and does nothing. When the retries
are spent the note fails with ``store_unavailable`` and the reason.

The pipeline reaches the harness only through ``ctx.emit`` (the SDK's
``Monitor.emit``); a failure of monitoring can never fail or slow a stage.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from voicewatch.clock import now_ms
from voicewatch.model import STAGE_EVENTS, ArtifactStatus, Stage
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.context import InjectedFault, PipelineContext
from voicewatch.pipeline.context import in_place as _in_place
from voicewatch.pipeline.steps import WORK as _WORK
from voicewatch.store.transient import first_line, is_transient

log = logging.getLogger("voicewatch.stages")

#: Stage order: the stage each one follows, and what comes next.
PREVIOUS: dict[str, str] = {
    Stage.TRANSCRIPTION: Stage.INGESTION,
    Stage.CLAIMS_EXTRACTION: Stage.TRANSCRIPTION,
    Stage.ENTITY_RESOLUTION: Stage.CLAIMS_EXTRACTION,
    Stage.DRAFT_GENERATION: Stage.ENTITY_RESOLUTION,
}
NEXT: dict[str, str | None] = {
    Stage.TRANSCRIPTION: Stage.CLAIMS_EXTRACTION,
    Stage.CLAIMS_EXTRACTION: Stage.ENTITY_RESOLUTION,
    Stage.ENTITY_RESOLUTION: Stage.DRAFT_GENERATION,
    Stage.DRAFT_GENERATION: None,
}


def _event_id(artifact: dict[str, Any], attempt: int, name: str) -> str:
    return f"{artifact['artifact_id']}.{attempt}.{name}"


def _emit(
    ctx: PipelineContext, artifact: dict[str, Any], attempt: int, event_type: str, **fields: Any
) -> None:
    suffix = fields.pop("id_suffix", "")
    metadata = dict(fields.pop("metadata", {}) or {})
    if attempt:
        metadata.setdefault("retry_attempt", attempt)
    ctx.emit(
        event_type,
        event_id=_event_id(artifact, attempt, event_type + suffix),
        artifact_id=artifact["artifact_id"],
        voice_note_id=artifact.get("voice_note_id"),
        organization_id=artifact["organization_id"],
        coach_user_id=artifact["coach_user_id"],
        metadata=metadata or None,
        **fields,
    )


def _status_changed(
    ctx: PipelineContext, artifact: dict[str, Any], attempt: int, old: str, new: str, stage: str
) -> None:
    if old != new:
        _emit(
            ctx,
            artifact,
            attempt,
            "artifact_status_changed",
            id_suffix=f".{stage}.{new}",
            previous_status=old,
            new_status=new,
            pipeline_stage=stage,
        )


def emit_received(ctx: PipelineContext, artifact: dict[str, Any]) -> None:
    """``artifact_received``: the first event of every artifact (seed instrumentation point 1)."""
    _emit(
        ctx,
        artifact,
        0,
        "artifact_received",
        pipeline_stage=Stage.INGESTION.value,
        new_status=ArtifactStatus.RECEIVED.value,
        timestamp=artifact["created_at"],
    )


#: ``error_code`` of a note failed because the store stayed unavailable.
STORE_UNAVAILABLE = "store_unavailable"


def _fail(
    ctx: PipelineContext,
    artifact: dict[str, Any],
    attempt: int,
    stage: str,
    exc: BaseException,
    started: float,
) -> None:
    code = getattr(exc, "error_code", None) or getattr(exc, "code", None) or type(exc).__name__
    message = str(exc) or type(exc).__name__
    if is_transient(exc):
        code = STORE_UNAVAILABLE
        message = f"the store stayed unavailable through every retry: {first_line(exc)}"
    duration = (time.perf_counter() - started) * 1000
    fail_stage(ctx, artifact, attempt, stage, message, str(code), duration)


def fail_unavailable(
    ctx: PipelineContext, stage: str, artifact_id: str, attempt: int, exc: BaseException, tries: int
) -> bool:
    """Fail a note whose stage task spent its retries before its claim; False if it cannot.

    Best effort: when even this fails the store is down for good, and the
    recovery job fails or requeues the note once it is back.
    """
    try:
        artifact = _in_place(
            lambda: repo.get_artifact(ctx.engine, artifact_id),
            artifact_id,
            attempt,
            "read it to fail it",
        )
        if artifact is None:
            return False
        message = f"the store stayed unavailable through {tries} retries: {first_line(exc)}"
        return fail_stage(ctx, artifact, attempt, stage, message, STORE_UNAVAILABLE)
    except Exception as again:
        log.error(
            "voicewatch: could not fail %s either (%s); recovery will",
            artifact_id,
            first_line(again),
        )
        return False


def fail_stage(
    ctx: PipelineContext,
    artifact: dict[str, Any],
    attempt: int,
    stage: str,
    message: str,
    code: str,
    duration_ms: float | None = None,
) -> bool:
    """Fail the artifact at ``stage`` with its events; False when it had already ended."""
    artifact_id = artifact["artifact_id"]
    previous = _in_place(
        lambda: repo.fail_artifact(
            ctx.engine, artifact_id, attempt, stage=stage, message=message, code=code
        ),
        artifact_id,
        attempt,
        f"mark it failed at {stage}",
    )
    if previous is None:
        return False
    failed_type = STAGE_EVENTS[Stage(stage)].failed
    common = {
        "pipeline_stage": stage,
        "error_message": message[:4000],
        "error_code": code[:128],
    }
    if failed_type != "artifact_failed":
        _emit(ctx, artifact, attempt, failed_type, duration_ms=duration_ms, **common)
    _status_changed(ctx, artifact, attempt, previous, ArtifactStatus.FAILED.value, stage)
    _emit(
        ctx, artifact, attempt, "artifact_failed", new_status=ArtifactStatus.FAILED.value, **common
    )
    if attempt:
        if ctx.finish_retry is not None:
            record = ctx.finish_retry
            _in_place(
                lambda: record(ctx.engine, artifact_id, attempt, ok=False, error=message),
                artifact_id,
                attempt,
                "record the failed retry",
            )
        _emit(ctx, artifact, attempt, "retry_failed", **common)
    return True


def _maybe_inject(ctx: PipelineContext, artifact: dict[str, Any], attempt: int, stage: str) -> None:
    delay = ctx.stage_delay_ms.get(stage, 0)
    if delay:
        time.sleep(delay / 1000)
    if artifact.get("fail_plan") == stage and attempt == 0:
        raise InjectedFault(stage)


def run_stage(ctx: PipelineContext, stage: str, artifact_id: str, attempt: int) -> bool:
    """Run ``stage`` for one artifact and attempt; returns True when the stage did work."""
    status = {
        Stage.TRANSCRIPTION: ArtifactStatus.TRANSCRIBING.value,
    }.get(Stage(stage), ArtifactStatus.PROCESSING.value)
    before = repo.get_artifact(ctx.engine, artifact_id)
    if before is None:
        return False
    artifact = repo.claim_stage(
        ctx.engine,
        artifact_id,
        attempt,
        stage=stage,
        expected_completed=PREVIOUS[Stage(stage)],
        status=status,
    )
    if artifact is None:
        return False
    started = time.perf_counter()
    events = STAGE_EVENTS[Stage(stage)]
    _status_changed(ctx, artifact, attempt, before["status"], status, stage)
    _emit(ctx, artifact, attempt, events.started, pipeline_stage=stage, stage_started_at=now_ms())
    try:
        _maybe_inject(ctx, artifact, attempt, stage)
        outcome = _WORK[Stage(stage)](ctx, artifact, attempt)
    except Exception as exc:
        failure = _deferred_or(ctx, artifact, before, attempt, stage, exc)
        if failure is not None:
            _fail(ctx, artifact, attempt, stage, failure, started)
        return True
    duration = (time.perf_counter() - started) * 1000
    end = now_ms()
    _emit(
        ctx,
        artifact,
        attempt,
        outcome.event_type,
        pipeline_stage=stage,
        stage_started_at=end - int(duration),
        stage_completed_at=end,
        duration_ms=round(duration, 3),
        metadata=outcome.metadata,
    )
    _status_changed(ctx, artifact, attempt, status, outcome.status, stage)
    following = NEXT[Stage(stage)]
    if following is None:
        _emit(
            ctx,
            artifact,
            attempt,
            "artifact_completed",
            new_status=ArtifactStatus.COMPLETED.value,
            duration_ms=max(0, end - artifact["created_at"]),
        )
        if attempt:
            if ctx.finish_retry is not None:
                record = ctx.finish_retry
                _in_place(
                    lambda: record(ctx.engine, artifact_id, attempt, ok=True),
                    artifact_id,
                    attempt,
                    "record the retry's success",
                )
            _emit(ctx, artifact, attempt, "retry_succeeded")
        _then(outcome.then, artifact_id, attempt)
    else:
        _in_place(
            lambda: ctx.enqueue(str(following), artifact_id, attempt),
            artifact_id,
            attempt,
            f"queue {following}",
        )
    return True


def _then(work: Any, artifact_id: str, attempt: int) -> None:
    """What follows a completed note (auto-apply): its failure fails nothing.

    The note is complete and its drafts are stored; a draft that could not be
    auto-applied stays pending for its coach to decide, so an error is logged only.
    """
    if work is None:
        return
    try:
        work()
    except Exception as exc:  # the drafts wait for a person instead
        log.warning("%s (attempt %s): after completion: %s", artifact_id, attempt, exc)


def _deferred_or(
    ctx: PipelineContext,
    artifact: dict[str, Any],
    before: dict[str, Any],
    attempt: int,
    stage: str,
    exc: Exception,
) -> Exception | None:
    """Guard rails: a rate-limited stage is deferred (None); any other error is returned."""
    from voicewatch.pipeline.deferral import defer_stage
    from voicewatch.pipeline.providers import RateLimited

    if not isinstance(exc, RateLimited):
        return exc
    return defer_stage(ctx, artifact, before, attempt, stage, exc)
