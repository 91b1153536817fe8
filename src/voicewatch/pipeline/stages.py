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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine

from voicewatch.clock import now_ms
from voicewatch.model import STAGE_EVENTS, ArtifactStatus, Stage
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.alias_use import BY_ALIAS, count_alias_uses
from voicewatch.pipeline.drafts import draft_for_claim
from voicewatch.pipeline.resolution import resolve_name
from voicewatch.store import write_transaction
from voicewatch.store.transient import first_line, is_transient, retrying

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


class StageError(Exception):
    """A stage could not do its work; ``code`` is machine-readable."""

    def __init__(self, message: str, code: str = "stage_error") -> None:
        super().__init__(message)
        self.error_code = code


class InjectedFault(StageError):
    """A simulated transient fault (``simulate --failure-rate``): the retry succeeds."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"simulated transient fault in {stage}", "injected_fault")


@dataclass
class PipelineContext:
    """What the stages need, built once per worker process."""

    engine: Engine
    emit: Callable[..., Any]
    #: (artifact row, roster names as hints) -> (Transcript, cost in USD)
    transcribe: Callable[[dict[str, Any], list[str]], tuple[Any, float]]
    #: (artifact row, transcript text, roster player names) -> (claims, cost in USD)
    extract: Callable[[dict[str, Any], str, list[str]], tuple[list[Any], float]]
    enqueue: Callable[[str, str, int], None]
    stage_delay_ms: dict[str, int] = field(default_factory=dict)
    monitor: Any = None  # the emitter behind ``emit``, flushed by tests and at exit


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


T = TypeVar("T")
#: ``error_code`` of a note failed because the store stayed unavailable.
STORE_UNAVAILABLE = "store_unavailable"


def _in_place(work: Callable[[], T], artifact_id: str, attempt: int, step: str) -> T:
    """A store step of a claimed stage, retried here on transient errors (see the module)."""
    return retrying(work, f"{artifact_id} (attempt {attempt}): {step}")


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
        _in_place(
            lambda: repo.finish_retry(ctx.engine, artifact_id, attempt, ok=False, error=message),
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
        _fail(ctx, artifact, attempt, stage, exc, started)
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
            _in_place(
                lambda: repo.finish_retry(ctx.engine, artifact_id, attempt, ok=True),
                artifact_id,
                attempt,
                "record the retry's success",
            )
            _emit(ctx, artifact, attempt, "retry_succeeded")
    else:
        _in_place(
            lambda: ctx.enqueue(str(following), artifact_id, attempt),
            artifact_id,
            attempt,
            f"queue {following}",
        )
    return True


@dataclass(frozen=True)
class Outcome:
    event_type: str
    status: str
    metadata: dict[str, Any]


def _transcription(ctx: PipelineContext, artifact: dict[str, Any], attempt: int) -> Outcome:
    artifact_id = artifact["artifact_id"]

    def transcribe() -> tuple[Any, float]:
        names = [entry.name for entry in repo.roster(ctx.engine, artifact["organization_id"])]
        return ctx.transcribe(artifact, names)

    transcript, cost = _in_place(transcribe, artifact_id, attempt, "transcribe")
    _in_place(
        lambda: _save_transcript(ctx, artifact, attempt, transcript),
        artifact_id,
        attempt,
        "store the transcript",
    )
    metadata: dict[str, Any] = {
        "transcript_word_count": transcript.word_count,
        "ai_model": transcript.model,
    }
    if transcript.confidence is not None:
        metadata["confidence_score"] = round(min(max(transcript.confidence, 0.0), 1.0), 4)
    if transcript.duration_seconds is not None:
        metadata["transcript_duration"] = round(transcript.duration_seconds, 2)
    if cost:
        metadata["ai_cost"] = cost
    return Outcome("transcription_completed", ArtifactStatus.TRANSCRIBED.value, metadata)


def _save_transcript(
    ctx: PipelineContext, artifact: dict[str, Any], attempt: int, transcript: Any
) -> None:
    with write_transaction(ctx.engine) as conn:
        repo.store_transcript(
            conn,
            artifact["artifact_id"],
            full_text=transcript.full_text,
            segments=list(transcript.segments),
            duration_seconds=transcript.duration_seconds,
            word_count=transcript.word_count,
            confidence=transcript.confidence,
            model=transcript.model,
        )
        if not repo.finish_stage(
            conn,
            artifact["artifact_id"],
            attempt,
            stage=Stage.TRANSCRIPTION,
            status=ArtifactStatus.TRANSCRIBED.value,
        ):
            raise StageError("the artifact changed while it was transcribed", "conflict")


def _claims(ctx: PipelineContext, artifact: dict[str, Any], attempt: int) -> Outcome:
    artifact_id = artifact["artifact_id"]

    def extract() -> tuple[list[Any], float]:
        transcript = repo.get_transcript(ctx.engine, artifact_id)
        if transcript is None:
            raise StageError("no transcript to extract claims from", "missing_transcript")
        names = [
            entry.name
            for entry in repo.roster(ctx.engine, artifact["organization_id"])
            if entry.entity_type == "player"
        ]
        return ctx.extract(artifact, transcript["full_text"], names)

    claims, cost = _in_place(extract, artifact_id, attempt, "extract claims")
    rows = [
        {
            "topic": c.topic,
            "source_text": c.source_text,
            "mentioned_names": list(c.mentioned_names),
            "extraction_confidence": float(c.extraction_confidence),
        }
        for c in claims
    ]

    def save() -> None:
        with write_transaction(ctx.engine) as conn:
            repo.replace_claims(conn, artifact_id, artifact["organization_id"], rows)
            if not repo.finish_stage(
                conn,
                artifact_id,
                attempt,
                stage=Stage.CLAIMS_EXTRACTION,
                status=ArtifactStatus.PROCESSING.value,
            ):
                raise StageError("the artifact changed during claims extraction", "conflict")

    _in_place(save, artifact_id, attempt, "store the claims")
    confidence = sum(r["extraction_confidence"] for r in rows) / len(rows) if rows else 0.0
    metadata: dict[str, Any] = {"claim_count": len(rows), "confidence_score": round(confidence, 4)}
    model_name = getattr(ctx.extract, "model", None)
    if model_name:
        metadata["ai_model"] = model_name
    if cost:
        metadata["ai_cost"] = cost
    return Outcome("claims_extracted", ArtifactStatus.PROCESSING.value, metadata)


def _resolution(ctx: PipelineContext, artifact: dict[str, Any], attempt: int) -> Outcome:
    artifact_id = artifact["artifact_id"]
    claims, roster, aliases = _in_place(
        lambda: (
            repo.claims_of(ctx.engine, artifact_id),
            repo.roster(ctx.engine, artifact["organization_id"]),
            repo.aliases_for(ctx.engine, artifact["coach_user_id"], artifact["organization_id"]),
        ),
        artifact_id,
        attempt,
        "read claims, roster and aliases",
    )
    rows: list[dict[str, Any]] = []
    for claim in claims:
        for raw in claim["mentioned_names"]:
            result = resolve_name(raw, roster, aliases)
            best = result.best
            rows.append(
                {
                    "claim_id": claim["claim_id"],
                    "raw_text": raw[:200],
                    "candidates": [
                        {
                            "entity_id": c.entity_id,
                            "name": c.name,
                            "entity_type": c.entity_type,
                            "score": round(c.score, 2),
                        }
                        for c in result.candidates
                    ],
                    "resolved_entity_id": best.entity_id
                    if best and result.status == "auto_resolved"
                    else None,
                    "resolved_entity_type": best.entity_type
                    if best and result.status == "auto_resolved"
                    else None,
                    "score": round(best.score, 2) if best else None,
                    "status": result.status,
                    # the coach loop: an alias decided it (counted below, shown in metrics)
                    "resolved_by": BY_ALIAS if best and best.matched_on == "alias" else None,
                }
            )
    disambiguations = sum(1 for r in rows if r["status"] != "auto_resolved")
    alias_hits = [r["raw_text"] for r in rows if r["resolved_by"] == BY_ALIAS]

    def save() -> None:
        with write_transaction(ctx.engine) as conn:
            repo.replace_resolutions(conn, artifact_id, artifact["organization_id"], rows)
            count_alias_uses(
                conn, artifact["coach_user_id"], artifact["organization_id"], alias_hits, now_ms()
            )
            if not repo.finish_stage(
                conn,
                artifact_id,
                attempt,
                stage=Stage.ENTITY_RESOLUTION,
                status=ArtifactStatus.PROCESSING.value,
            ):
                raise StageError("the artifact changed during entity resolution", "conflict")

    _in_place(save, artifact_id, attempt, "store the resolutions")
    event = "entity_needs_disambiguation" if disambiguations else "entity_resolution_completed"
    return Outcome(
        event,
        ArtifactStatus.PROCESSING.value,
        {"entity_count": len(rows), "disambiguation_count": disambiguations},
    )


def _drafts(ctx: PipelineContext, artifact: dict[str, Any], attempt: int) -> Outcome:
    artifact_id = artifact["artifact_id"]
    claims, resolutions = _in_place(
        lambda: (
            repo.claims_of(ctx.engine, artifact_id),
            repo.resolutions_of(ctx.engine, artifact_id),
        ),
        artifact_id,
        attempt,
        "read claims and resolutions",
    )
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for res in resolutions:
        by_claim.setdefault(res["claim_id"], []).append(res)
    drafts = [
        draft_for_claim(claim, by_claim.get(claim["claim_id"], []))
        for claim in claims
        if claim["status"] == "resolved"
    ]

    def save() -> None:
        with write_transaction(ctx.engine) as conn:
            repo.replace_drafts(conn, artifact_id, artifact["organization_id"], drafts)
            if not repo.finish_stage(
                conn,
                artifact_id,
                attempt,
                stage=Stage.DRAFT_GENERATION,
                status=ArtifactStatus.COMPLETED.value,
            ):
                raise StageError("the artifact changed during draft generation", "conflict")

    _in_place(save, artifact_id, attempt, "store the drafts")
    from voicewatch.pipeline.autoapply import apply_above_threshold  # the coach loop

    _in_place(
        lambda: apply_above_threshold(ctx.engine, artifact_id),
        artifact_id,
        attempt,
        "auto-apply the drafts above the coach's threshold",
    )
    confidence = sum(d["ai_confidence"] for d in drafts) / len(drafts) if drafts else 0.0
    return Outcome(
        "drafts_generated",
        ArtifactStatus.COMPLETED.value,
        {"draft_count": len(drafts), "confidence_score": round(confidence, 4)},
    )


_WORK: dict[Stage, Callable[[PipelineContext, dict[str, Any], int], Outcome]] = {
    Stage.TRANSCRIPTION: _transcription,
    Stage.CLAIMS_EXTRACTION: _claims,
    Stage.ENTITY_RESOLUTION: _resolution,
    Stage.DRAFT_GENERATION: _drafts,
}
