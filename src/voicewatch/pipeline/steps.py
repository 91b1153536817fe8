"""The work of each stage: transcribe, extract claims, resolve names, draft insights.

Each function gets a claimed artifact and returns the ``Outcome`` that
``stages.run_stage`` records; its store steps retry in place (``in_place``)
and its outputs replace earlier ones in one transaction, so running it twice
for one attempt leaves what one run leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from voicewatch.clock import now_ms
from voicewatch.model import ArtifactStatus, Stage
from voicewatch.pipeline import clubs, outputs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.alias_use import BY_ALIAS, count_alias_uses
from voicewatch.pipeline.context import PipelineContext, StageError
from voicewatch.pipeline.context import in_place as _in_place
from voicewatch.pipeline.drafts import draft_for_claim
from voicewatch.pipeline.resolution import resolve_name
from voicewatch.store import write_transaction


@dataclass(frozen=True)
class Outcome:
    event_type: str
    status: str
    metadata: dict[str, Any]
    #: what follows once the stage's own events are out (the last stage's auto-apply)
    then: Callable[[], Any] | None = None


#: The status a finished stage leaves the artifact in, and when a lost claim happened.
_FINISHED: dict[Stage, tuple[ArtifactStatus, str]] = {
    Stage.TRANSCRIPTION: (ArtifactStatus.TRANSCRIBED, "while it was transcribed"),
    Stage.CLAIMS_EXTRACTION: (ArtifactStatus.PROCESSING, "during claims extraction"),
    Stage.ENTITY_RESOLUTION: (ArtifactStatus.PROCESSING, "during entity resolution"),
    Stage.DRAFT_GENERATION: (ArtifactStatus.COMPLETED, "during draft generation"),
}


def _finish(conn: Connection, artifact_id: str, attempt: int, stage: Stage) -> None:
    """Mark ``stage`` done in the transaction that stored its outputs, or roll them back.

    Why: ``finish_stage`` moves only the row this attempt claimed; when it moves none, a
    retry or a reset took the artifact meanwhile, and the outputs must not stay.
    """
    status, during = _FINISHED[stage]
    if not repo.finish_stage(conn, artifact_id, attempt, stage=stage, status=status.value):
        raise StageError(f"the artifact changed {during}", "conflict")


def _transcription(ctx: PipelineContext, artifact: dict[str, Any], attempt: int) -> Outcome:
    artifact_id = artifact["artifact_id"]

    def transcribe() -> tuple[Any, float]:
        names = [entry.name for entry in clubs.roster(ctx.engine, artifact["organization_id"])]
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
        _finish(conn, artifact["artifact_id"], attempt, Stage.TRANSCRIPTION)


def _claims(ctx: PipelineContext, artifact: dict[str, Any], attempt: int) -> Outcome:
    artifact_id = artifact["artifact_id"]

    def extract() -> tuple[list[Any], float]:
        transcript = repo.get_transcript(ctx.engine, artifact_id)
        if transcript is None:
            raise StageError("no transcript to extract claims from", "missing_transcript")
        names = [
            entry.name
            for entry in clubs.roster(ctx.engine, artifact["organization_id"])
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
            outputs.replace_claims(conn, artifact_id, artifact["organization_id"], rows)
            _finish(conn, artifact_id, attempt, Stage.CLAIMS_EXTRACTION)

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
            clubs.roster(ctx.engine, artifact["organization_id"]),
            clubs.aliases_for(ctx.engine, artifact["coach_user_id"], artifact["organization_id"]),
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
    stored: list[dict[str, Any]] = []

    def save() -> None:
        with write_transaction(ctx.engine) as conn:
            kept_and_new, hits = outputs.replace_resolutions(
                conn, artifact_id, artifact["organization_id"], rows
            )
            stored[:] = kept_and_new  # a person's resolutions stay (a retry: ``outputs``)
            count_alias_uses(
                conn, artifact["coach_user_id"], artifact["organization_id"], hits.new, now_ms()
            )
            _finish(conn, artifact_id, attempt, Stage.ENTITY_RESOLUTION)

    _in_place(save, artifact_id, attempt, "store the resolutions")
    # a name the pipeline could not place; one a person placed (kept by a retry) is not
    disambiguations = sum(
        1
        for r in stored
        if r["status"] != "auto_resolved" and r.get("resolved_by") in (None, BY_ALIAS)
    )
    event = "entity_needs_disambiguation" if disambiguations else "entity_resolution_completed"
    return Outcome(
        event,
        ArtifactStatus.PROCESSING.value,
        {"entity_count": len(stored), "disambiguation_count": disambiguations},
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

    written: list[dict[str, Any]] = []

    def save() -> None:
        with write_transaction(ctx.engine) as conn:
            # a claim whose draft a person (or auto-apply) decided keeps it (``outputs``)
            written[:] = outputs.replace_drafts(
                conn, artifact_id, artifact["organization_id"], drafts
            )
            _finish(conn, artifact_id, attempt, Stage.DRAFT_GENERATION)

    _in_place(save, artifact_id, attempt, "store the drafts")
    from voicewatch.pipeline.autoapply import apply_above_threshold  # the coach loop

    confidence = sum(d["ai_confidence"] for d in written) / len(written) if written else 0.0
    return Outcome(
        "drafts_generated",
        ArtifactStatus.COMPLETED.value,
        {"draft_count": len(written), "confidence_score": round(confidence, 4)},
        # after drafts_generated, so each auto-applied draft's draft_confirmed follows it
        then=lambda: _in_place(
            lambda: apply_above_threshold(ctx, artifact_id),
            artifact_id,
            attempt,
            "auto-apply the drafts above the coach's threshold",
        ),
    )


WORK: dict[Stage, Callable[[PipelineContext, dict[str, Any], int], Outcome]] = {
    Stage.TRANSCRIPTION: _transcription,
    Stage.CLAIMS_EXTRACTION: _claims,
    Stage.ENTITY_RESOLUTION: _resolution,
    Stage.DRAFT_GENERATION: _drafts,
}
