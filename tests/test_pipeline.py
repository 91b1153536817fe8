"""The voice-note pipeline end to end, on both databases, through the real emitter."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from pipeline_helpers import make_pipeline, run_note
from voicewatch import event_queries
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.intake import submit_note
from voicewatch.pipeline.stages import run_stage
from voicewatch.store.tables import insight_drafts, voice_note_claims, voice_pipeline_events

NOTE = (
    "Sean Murphy went over on his ankle at training and will miss Saturday. "
    "Aoife Kelly was brilliant on the frees, her striking has really come on."
)

EXPECTED_ORDER = [
    "artifact_received",
    "artifact_status_changed",
    "transcription_started",
    "transcription_completed",
    "artifact_status_changed",
    "artifact_status_changed",
    "claims_extraction_started",
    "claims_extracted",
    "entity_resolution_started",
    "entity_resolution_completed",
    "draft_generation_started",
    "drafts_generated",
    "artifact_status_changed",
    "artifact_completed",
]


def _timeline(ctx: Any, artifact_id: str) -> list[dict[str, Any]]:
    ctx.monitor.flush(timeout=10)
    return event_queries.artifact_timeline(ctx.engine, artifact_id)


def test_a_text_note_goes_through_every_stage(db_url: str) -> None:
    ctx, driver = make_pipeline(db_url)
    artifact = submit_note(ctx, organization_id="org_clg", coach_user_id="coach_1", text=NOTE)
    assert driver.drain() == 4
    row = repo.get_artifact(ctx.engine, artifact["artifact_id"])
    assert row is not None and row["status"] == "completed"
    timeline = _timeline(ctx, artifact["artifact_id"])
    assert [e["event_type"] for e in timeline] == EXPECTED_ORDER
    completions = {e["event_type"]: e for e in timeline}
    for name in ("transcription_completed", "claims_extracted", "drafts_generated"):
        assert (
            completions[name]["duration_ms"] is not None and completions[name]["duration_ms"] >= 0
        )
    assert completions["claims_extracted"]["metadata"]["claim_count"] >= 2
    claims = repo.claims_of(ctx.engine, artifact["artifact_id"])
    topics = {c["topic"] for c in claims}
    assert "injury" in topics
    resolutions = repo.resolutions_of(ctx.engine, artifact["artifact_id"])
    resolved = {r["resolved_entity_id"] for r in resolutions if r["status"] == "auto_resolved"}
    assert clubs.player_id_for("org_clg", "Sean Murphy", "U14 Hurling") in resolved
    drafts = repo.drafts_of(ctx.engine, artifact["artifact_id"])
    assert len(drafts) == len(
        [
            c
            for c in repo.claims_of(ctx.engine, artifact["artifact_id"])
            if c["status"] == "resolved"
        ]
    )
    assert all(0 <= d["ai_confidence"] <= 1 for d in drafts)
    ctx.monitor.close()


def test_a_stage_that_runs_twice_duplicates_nothing(db_url: str) -> None:
    ctx, driver = make_pipeline(db_url)
    artifact = submit_note(ctx, organization_id="org_clg", coach_user_id="coach_1", text=NOTE)
    artifact_id = artifact["artifact_id"]
    driver.drain()
    before_events = len(_timeline(ctx, artifact_id))
    with ctx.engine.connect() as conn:
        claims_before = conn.execute(
            select(func.count()).select_from(voice_note_claims)
        ).scalar_one()
        drafts_before = conn.execute(select(func.count()).select_from(insight_drafts)).scalar_one()
    for stage in ("transcription", "claims_extraction", "entity_resolution", "draft_generation"):
        assert run_stage(ctx, stage, artifact_id, 0) is False
    driver.drain()
    with ctx.engine.connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(voice_note_claims)).scalar_one()
            == claims_before
        )
        assert (
            conn.execute(select(func.count()).select_from(insight_drafts)).scalar_one()
            == drafts_before
        )
    assert len(_timeline(ctx, artifact_id)) == before_events
    ctx.monitor.close()


def test_an_injected_fault_fails_the_artifact_with_its_events(db_url: str) -> None:
    ctx, driver = make_pipeline(db_url)
    row = run_note(
        ctx,
        driver,
        NOTE,
        coach_user_id="coach_2",
        source_channel="whatsapp",
        fail_plan="claims_extraction",
    )
    assert row["status"] == "failed"
    assert row["error_code"] == "injected_fault"
    types = [e["event_type"] for e in _timeline(ctx, row["artifact_id"])]
    assert "claims_extraction_failed" in types and types[-1] == "artifact_failed"
    with ctx.engine.connect() as conn:
        failed = conn.execute(
            select(voice_pipeline_events.c.error_message).where(
                voice_pipeline_events.c.event_type == "artifact_failed"
            )
        ).scalar_one()
    assert "simulated transient fault" in failed
    ctx.monitor.close()


def test_unknown_organization_is_refused_clearly(sqlite_url: str) -> None:
    ctx, _driver = make_pipeline(sqlite_url)
    with pytest.raises(clubs.RecordError, match="unknown organization"):
        submit_note(ctx, organization_id="org_nope", coach_user_id="c", text="hello")
    ctx.monitor.close()
