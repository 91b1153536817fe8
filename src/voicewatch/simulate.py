"""Realistic traffic: event streams as the pipeline would emit them.

``artifact_events`` writes the whole event story of one voice note, with
realistic stage durations and metadata, for seeding the demo, benchmarks and
load tests without running the pipeline itself.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

DEMO_ORGANIZATIONS: tuple[tuple[str, str], ...] = (
    ("org_clg", "Clonmore GAA"),
    ("org_rvfc", "Riverside FC"),
    ("org_hrc", "Harbour Rugby Club"),
)

# (stage, started type, completed type, median ms)
_STAGES: tuple[tuple[str, str, str, int], ...] = (
    ("transcription", "transcription_started", "transcription_completed", 4200),
    ("claims_extraction", "claims_extraction_started", "claims_extracted", 3100),
    ("entity_resolution", "entity_resolution_started", "entity_resolution_completed", 600),
    ("draft_generation", "draft_generation_started", "drafts_generated", 2400),
)
_FAILED_TYPE = {
    "transcription": "transcription_failed",
    "claims_extraction": "claims_extraction_failed",
}


def _event(event_type: str, ts: int, base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "timestamp": ts,
        **base,
        **fields,
    }


def _failure(stage: str, ts: int, base: dict[str, Any], duration: int) -> list[dict[str, Any]]:
    """The events of ``stage`` failing (its own failure type, then ``artifact_failed``)."""
    out = [
        _event(
            _FAILED_TYPE.get(stage, "artifact_failed"),
            ts,
            base,
            pipeline_stage=stage,
            duration_ms=duration,
            error_message=f"{stage} provider timed out",
            error_code="provider_timeout",
        )
    ]
    if stage in _FAILED_TYPE:
        out.append(
            _event(
                "artifact_failed",
                ts + 1,
                base,
                pipeline_stage=stage,
                error_message=f"{stage} provider timed out",
                error_code="provider_timeout",
                new_status="failed",
            )
        )
    return out


def _stage_metadata(rng: random.Random, stage: str, claims: int) -> tuple[dict[str, Any], bool]:
    """A completed stage's metadata, and whether it left names to disambiguate.

    Draws from ``rng`` in the same order for every stage, so a seed gives the same story.
    """
    if stage == "transcription":
        words = rng.randint(20, 180)
        return {
            "confidence_score": round(rng.uniform(0.78, 0.99), 3),
            "transcript_duration": round(words / 2.4, 1),
            "transcript_word_count": words,
            "ai_model": "whisper-1",
            "ai_cost": round(words / 2.4 / 60 * 0.006, 6),
        }, False
    if stage == "claims_extraction":
        return {
            "claim_count": claims,
            "confidence_score": round(rng.uniform(0.6, 0.97), 3),
            "ai_model": "gpt-4o-mini",
            "ai_cost": round(rng.uniform(0.0004, 0.003), 6),
        }, False
    if stage == "entity_resolution":
        disambiguations = rng.choice((0, 0, 0, 1)) if claims > 1 else 0
        return {"entity_count": claims, "disambiguation_count": disambiguations}, bool(
            disambiguations
        )
    return {"draft_count": claims, "confidence_score": round(rng.uniform(0.6, 0.95), 3)}, False


def artifact_events(
    rng: random.Random,
    *,
    start_ms: int,
    organization_id: str,
    coach_user_id: str,
    artifact_id: str | None = None,
    fail_at: str | None = None,
) -> list[dict[str, Any]]:
    """The events of one artifact from receipt to completion (or failure at ``fail_at``)."""
    artifact_id = artifact_id or f"art_{uuid.uuid4().hex[:16]}"
    base = {
        "artifact_id": artifact_id,
        "organization_id": organization_id,
        "coach_user_id": coach_user_id,
    }
    ts = start_ms
    out = [_event("artifact_received", ts, base, pipeline_stage="ingestion", new_status="received")]
    claims = rng.randint(1, 7)
    for stage, started, completed, median in _STAGES:
        ts += rng.randint(5, 400)
        out.append(_event(started, ts, base, pipeline_stage=stage, stage_started_at=ts))
        duration = max(20, int(rng.lognormvariate(0, 0.45) * median))
        begin, ts = ts, ts + duration
        if stage == fail_at:
            out.extend(_failure(stage, ts, base, duration))
            return out
        meta, needs_disambiguation = _stage_metadata(rng, stage, claims)
        if needs_disambiguation:
            completed = "entity_needs_disambiguation"
        out.append(
            _event(
                completed,
                ts,
                base,
                pipeline_stage=stage,
                stage_started_at=begin,
                stage_completed_at=ts,
                duration_ms=duration,
                metadata=meta,
            )
        )
    ts += rng.randint(1, 50)
    out.append(_event("artifact_completed", ts, base, new_status="completed"))
    return out


def traffic(
    rng: random.Random,
    *,
    artifacts: int,
    start_ms: int,
    end_ms: int,
    failure_rate: float = 0.05,
) -> list[dict[str, Any]]:
    """Events of ``artifacts`` artifacts spread over [start_ms, end_ms)."""
    out: list[dict[str, Any]] = []
    stages = [s[0] for s in _STAGES]
    for _ in range(artifacts):
        org_id = rng.choice(DEMO_ORGANIZATIONS)[0]
        fail_at = rng.choice(stages) if rng.random() < failure_rate else None
        out.extend(
            artifact_events(
                rng,
                start_ms=rng.randrange(start_ms, max(start_ms + 1, end_ms)),
                organization_id=org_id,
                coach_user_id=f"coach_{org_id[4:]}_{rng.randint(1, 4)}",
                fail_at=fail_at,
            )
        )
    return out


# --- pipeline-driven traffic (voicewatch simulate) -----------------------------------


def seed_demo_clubs(engine: Any) -> None:
    """Create the demo organizations and their rosters if absent (idempotent)."""
    from voicewatch.pipeline import clubs
    from voicewatch.simulate_notes import DEMO_CLUBS, roster_csv, seed_demo_coaches

    for club in DEMO_CLUBS:
        clubs.upsert_organization(engine, club.organization_id, club.name)
        clubs.import_roster(engine, club.organization_id, roster_csv(club))
    seed_demo_coaches(engine)  # the coach loop: demo coaches have names (coaching.people)


FAULT_STAGES = ("transcription", "claims_extraction", "entity_resolution", "draft_generation")


def simulate_notes(
    ctx: Any,
    settings: Any,
    *,
    artifacts: int,
    failure_rate: float = 0.0,
    audio_share: float = 0.0,
    rng: random.Random | None = None,
    on_progress: Any = None,
) -> list[str]:
    """Queue ``artifacts`` realistic notes through the real pipeline; returns their ids.

    A fraction ``failure_rate`` fails once at a random stage (the first attempt
    fails; a retry succeeds). A share ``audio_share`` is sent as audio
    synthesised offline with espeak-ng, when it is installed.
    """
    from pathlib import Path

    from voicewatch.pipeline.intake import submit_note
    from voicewatch.simulate_notes import DEMO_CLUBS, make_note

    rng = rng or random.Random()
    seed_demo_clubs(ctx.engine)
    synthesize = _synthesizer(settings) if audio_share > 0 else None
    ids: list[str] = []
    for _ in range(artifacts):
        club = rng.choice(DEMO_CLUBS)
        text = make_note(rng, club)
        fail_plan = rng.choice(FAULT_STAGES) if rng.random() < failure_rate else None
        audio_path = None
        if synthesize is not None and rng.random() < audio_share:
            audio_path = str(synthesize(text, Path(settings.audio_dir)))
        artifact = submit_note(
            ctx,
            organization_id=club.organization_id,
            coach_user_id=rng.choice(club.coaches),
            source_channel=rng.choice(("whatsapp", "whatsapp", "app")),
            text=None if audio_path else text,
            audio_path=audio_path,
            fail_plan=fail_plan,
        )
        ids.append(artifact["artifact_id"])
        if on_progress:
            on_progress()
    return ids


def _synthesizer(settings: Any) -> Any:
    """espeak-ng synthesis into the audio folder, or None (said once) when it is missing."""
    import sys
    import uuid

    from voicewatch.pipeline import audio

    if not audio.espeak_available():
        print(
            "simulate: espeak-ng is not installed, so every note is sent as text "
            "(apt-get install espeak-ng for audio notes)",
            file=sys.stderr,
        )
        return None

    def synthesize(text: str, directory: Any) -> Any:
        directory.mkdir(parents=True, exist_ok=True)
        return audio.synthesize(text, directory / f"sim_{uuid.uuid4().hex}.wav")

    return synthesize
