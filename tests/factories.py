"""Realistic event streams for tests and benchmarks.

Three functions, nothing else::

    make_event(event_type, timestamp=..., **fields) -> dict
        One valid event (a fresh UUID ``event_id``); ``fields`` are merged in
        as given (``metadata=...`` included), so a test can also build an
        invalid one on purpose.

    make_events(artifact_id=None, *, organization_id=..., coach_user_id=...,
                start_ms=BASE_MS, fail_at=None, rng=0) -> list[dict]
        The whole story of one artifact, oldest first, with strictly increasing
        timestamps: ``artifact_received``, status changes, each processing
        stage's ``*_started`` and completion event (``duration_ms``,
        ``stage_started_at``/``stage_completed_at`` and the stage's metadata:
        confidence, word counts, claim/entity/disambiguation/draft counts, AI
        model and cost), then ``artifact_completed``. With ``fail_at=<stage>``
        the story stops at that stage: its failure event (``transcription_failed``
        / ``claims_extraction_failed``, or ``artifact_failed`` carrying the stage
        for the two stages without their own failure type), then
        ``artifact_failed``.

    make_traffic(artifacts, *, start_ms=BASE_MS, spread_ms=3_600_000,
                 organizations=ORGANIZATIONS, failure_rate=0.05, rng=0) -> list[dict]
        Many artifacts' events, interleaved and sorted by timestamp.

Durations and metadata come from ``rng`` (a ``random.Random`` or an int seed),
so a seed gives the same shape every time; event ids are always fresh UUIDs,
so two calls never collide. The events are plain JSON-like dicts, as a client
would send them; nothing here touches voicewatch itself.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

#: 2026-01-01T00:00:00.000Z, a fixed, whole-day start for reproducible tests.
BASE_MS = 1_767_225_600_000

ORGANIZATIONS: tuple[str, ...] = ("org_clg", "org_rvfc", "org_hrc")

#: The four processing stages: (stage, started type, completed type, median ms).
STAGES: tuple[tuple[str, str, str, int], ...] = (
    ("transcription", "transcription_started", "transcription_completed", 4200),
    ("claims_extraction", "claims_extraction_started", "claims_extracted", 3100),
    ("entity_resolution", "entity_resolution_started", "entity_resolution_completed", 600),
    ("draft_generation", "draft_generation_started", "drafts_generated", 2400),
)
#: The failure event of each stage (the last two have no ``*_failed`` type).
FAILED_TYPE: dict[str, str] = {
    "transcription": "transcription_failed",
    "claims_extraction": "claims_extraction_failed",
    "entity_resolution": "artifact_failed",
    "draft_generation": "artifact_failed",
}


def _rng(rng: random.Random | int) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def make_event(event_type: str, timestamp: int = BASE_MS, **fields: Any) -> dict[str, Any]:
    """One event with a fresh UUID ``event_id``; ``fields`` override or add anything."""
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "timestamp": timestamp} | (
        fields
    )


def _stage_metadata(
    rng: random.Random, stage: str, claims: int
) -> tuple[dict[str, Any], str | None]:
    """The completion metadata of ``stage`` and, if it differs, its completion type."""
    if stage == "transcription":
        words = rng.randint(20, 180)
        seconds = round(words / 2.4, 1)
        return {
            "confidence_score": round(rng.uniform(0.78, 0.99), 3),
            "transcript_duration": seconds,
            "transcript_word_count": words,
            "ai_model": "whisper-1",
            "ai_cost": round(seconds / 60 * 0.006, 6),
        }, None
    if stage == "claims_extraction":
        return {
            "claim_count": claims,
            "confidence_score": round(rng.uniform(0.6, 0.97), 3),
            "ai_model": "gpt-4o-mini",
            "ai_cost": round(rng.uniform(0.0004, 0.003), 6),
        }, None
    if stage == "entity_resolution":
        entities = claims + rng.randint(0, 2)
        disambiguations = rng.choice((0, 0, 0, 1, 2)) if entities > 1 else 0
        meta = {"entity_count": entities, "disambiguation_count": disambiguations}
        return meta, ("entity_needs_disambiguation" if disambiguations else None)
    return {
        "draft_count": claims,
        "confidence_score": round(rng.uniform(0.6, 0.95), 3),
        "ai_model": "gpt-4o-mini",
        "ai_cost": round(rng.uniform(0.0005, 0.004), 6),
    }, None


def make_events(
    artifact_id: str | None = None,
    *,
    organization_id: str = "org_test",
    coach_user_id: str | None = None,
    start_ms: int = BASE_MS,
    fail_at: str | None = None,
    rng: random.Random | int = 0,
) -> list[dict[str, Any]]:
    """The events of one artifact from receipt to completion (or failure at ``fail_at``)."""
    if fail_at is not None and fail_at not in FAILED_TYPE:
        raise ValueError(f"fail_at must be one of {sorted(FAILED_TYPE)}")
    r = _rng(rng)
    artifact_id = artifact_id or f"art_{uuid.uuid4().hex[:16]}"
    base: dict[str, Any] = {
        "artifact_id": artifact_id,
        "voice_note_id": f"vn_{artifact_id}",
        "organization_id": organization_id,
        "coach_user_id": coach_user_id or f"coach_{organization_id}",
    }
    ts = start_ms
    out = [
        make_event(
            "artifact_received", ts, **base, pipeline_stage="ingestion", new_status="received"
        )
    ]
    status = "received"

    def status_change(new: str) -> None:
        nonlocal ts, status
        ts += r.randint(1, 30)
        out.append(
            make_event(
                "artifact_status_changed", ts, **base, previous_status=status, new_status=new
            )
        )
        status = new

    claims = r.randint(1, 7)
    for stage, started, completed, median in STAGES:
        if stage == "transcription":
            status_change("transcribing")
        elif stage == "claims_extraction":
            status_change("processing")
        ts += r.randint(5, 400)
        begin = ts
        out.append(make_event(started, ts, **base, pipeline_stage=stage, stage_started_at=ts))
        duration = max(20, int(r.lognormvariate(0, 0.45) * median))
        ts += duration
        if stage == fail_at:
            error = {"error_message": f"{stage} provider timed out", "error_code": "timeout"}
            out.append(
                make_event(
                    FAILED_TYPE[stage],
                    ts,
                    **base,
                    pipeline_stage=stage,
                    stage_started_at=begin,
                    stage_completed_at=ts,
                    duration_ms=duration,
                    **error,
                )
            )
            if FAILED_TYPE[stage] != "artifact_failed":
                ts += r.randint(1, 30)
                out.append(
                    make_event(
                        "artifact_failed",
                        ts,
                        **base,
                        pipeline_stage=stage,
                        previous_status=status,
                        new_status="failed",
                        **error,
                    )
                )
            return out
        meta, completed_type = _stage_metadata(r, stage, claims)
        out.append(
            make_event(
                completed_type or completed,
                ts,
                **base,
                pipeline_stage=stage,
                stage_started_at=begin,
                stage_completed_at=ts,
                duration_ms=duration,
                metadata=meta,
            )
        )
        if stage == "transcription":
            status_change("transcribed")
    ts += r.randint(1, 50)
    out.append(
        make_event("artifact_completed", ts, **base, previous_status=status, new_status="completed")
    )
    return out


def make_traffic(
    artifacts: int,
    *,
    start_ms: int = BASE_MS,
    spread_ms: int = 3_600_000,
    organizations: tuple[str, ...] = ORGANIZATIONS,
    failure_rate: float = 0.05,
    rng: random.Random | int = 0,
) -> list[dict[str, Any]]:
    """Events of ``artifacts`` artifacts starting within [start_ms, start_ms + spread_ms)."""
    r = _rng(rng)
    out: list[dict[str, Any]] = []
    for _ in range(artifacts):
        org = r.choice(organizations)
        out.extend(
            make_events(
                organization_id=org,
                coach_user_id=f"coach_{org}_{r.randint(1, 4)}",
                start_ms=start_ms + r.randrange(max(1, spread_ms)),
                fail_at=r.choice(list(FAILED_TYPE)) if r.random() < failure_rate else None,
                rng=r,
            )
        )
    out.sort(key=lambda e: e["timestamp"])
    return out
