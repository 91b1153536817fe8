"""The guard rails inside the running pipeline: circuit breaker and budgets on real stages."""

from __future__ import annotations

from pathlib import Path

from guard_pipeline import Clock, clocked_pipeline
from pipeline_helpers import make_pipeline, run_note
from services import require_espeak
from voicewatch import event_queries
from voicewatch.clock import now_ms
from voicewatch.pipeline import audio, budgets
from voicewatch.pipeline import repository as repo


def _audio_note(ctx, path: Path) -> str:
    artifact = repo.create_artifact(
        ctx.engine,
        organization_id="org_clg",
        coach_user_id="coach_1",
        source_channel="whatsapp",
        audio_path=str(path),
    )
    return artifact["artifact_id"]


def _types(ctx, artifact_ids: list[str] | None = None) -> list[str]:
    ctx.monitor.flush(timeout=10)
    items, _ = event_queries.recent_events(ctx.engine, limit=500)
    return [e["event_type"] for e in reversed(items)]


def test_failing_transcriptions_open_the_circuit_and_recovery_closes_it(
    db_url: str, tmp_path: Path
) -> None:
    """The breaker runs on a test clock: with a real one, a 4th call that came more
    than the cool-down after the 3rd failure (a loaded machine) was let through as the
    probe and failed ``not_audio`` instead of ``circuit_open``."""
    require_espeak()
    clock = Clock()
    ctx, driver = clocked_pipeline(db_url, clock, breaker_failures=3, breaker_cooldown_ms=30_000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not really audio")
    failed = []
    for _ in range(4):
        artifact_id = _audio_note(ctx, broken)
        driver.enqueue("transcription", artifact_id, 0)
        driver.drain()
        failed.append(repo.get_artifact(ctx.engine, artifact_id))
    assert all(a["status"] == "failed" for a in failed)
    assert failed[3]["error_code"] == "circuit_open"  # the 4th call never reached the recogniser
    assert _types(ctx).count("circuit_breaker_opened") == 1
    clock.advance(30_000)  # past the cool-down: the next call is the probe
    good = audio.synthesize("Sean Murphy hurt his ankle at training", tmp_path / "good.wav")
    artifact_id = _audio_note(ctx, good)
    driver.enqueue("transcription", artifact_id, 0)
    driver.drain()
    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "completed"
    types = _types(ctx)
    assert types.count("circuit_breaker_closed") == 1
    assert types.index("circuit_breaker_opened") < types.index("circuit_breaker_closed")
    ctx.monitor.close()


def test_a_budget_below_the_days_spend_stops_ai_calls_with_a_clear_reason(
    db_url: str, tmp_path: Path
) -> None:
    require_espeak()
    ctx, driver = make_pipeline(db_url)
    budgets.set_budget(ctx.engine, "org_clg", 1.0)
    budgets.add_spend(ctx.engine, "org_clg", 1.5, now_ms(), ctx.emit)
    note = audio.synthesize("Aoife Kelly was brilliant on the frees", tmp_path / "note.wav")
    artifact_id = _audio_note(ctx, note)
    driver.enqueue("transcription", artifact_id, 0)
    driver.drain()
    row = repo.get_artifact(ctx.engine, artifact_id)
    assert row["status"] == "failed" and row["error_code"] == "budget_exceeded"
    assert "daily AI budget" in row["error_message"] and "org_clg" in row["error_message"]
    assert "budget_exceeded" in _types(ctx)
    # a text note needs no transcription, but its claims extraction is an AI call
    # (the rules extractor is costed by the estimated cost model): refused as well
    row = run_note(ctx, driver, "Jack Walsh was late.")
    assert row["status"] == "failed" and row["error_code"] == "budget_exceeded"
    assert row["current_stage"] == "claims_extraction"
    ctx.monitor.close()


def test_an_audio_note_goes_through_every_stage(sqlite_url: str, tmp_path: Path) -> None:
    require_espeak()
    ctx, driver = make_pipeline(sqlite_url)
    note = audio.synthesize(
        "Sean Murphy has a hamstring injury and will miss the match", tmp_path / "n.wav"
    )
    artifact_id = _audio_note(ctx, note)
    driver.enqueue("transcription", artifact_id, 0)
    driver.drain()
    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "completed"
    transcript = repo.get_transcript(ctx.engine, artifact_id)
    assert transcript is not None and transcript["model_used"] != "text"
    assert transcript["word_count"] > 3 and transcript["segments"]
    ctx.monitor.flush(timeout=10)
    kinds = [e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact_id)]
    for needed in (
        "transcription_completed",
        "claims_extracted",
        "drafts_generated",
        "artifact_completed",
    ):
        assert needed in kinds
    completed = next(
        e
        for e in event_queries.artifact_timeline(ctx.engine, artifact_id)
        if e["event_type"] == "transcription_completed"
    )
    assert completed["metadata"]["transcript_duration"] > 0
    ctx.monitor.close()


def test_the_openai_providers_run_the_pipeline_and_cost_it(sqlite_url: str, tmp_path: Path) -> None:
    """Whisper and chat extraction through the real client against the loopback fake."""
    from sqlalchemy import func, select

    from fake_openai import FakeOpenAI
    from voicewatch.store.tables import ai_usage_log

    with FakeOpenAI() as fake:
        ctx, driver = make_pipeline(
            sqlite_url,
            transcriber="openai",
            extractor="openai",
            openai_base_url=fake.base_url,
            openai_api_key="sk-test",
        )
        text = run_note(ctx, driver, "Sean Murphy hurt his ankle. Aoife Kelly scored twice.")
        assert text["status"] == "completed"
        claims = repo.claims_of(ctx.engine, text["artifact_id"])
        assert len(claims) == 2 and claims[0]["topic"] == "injury"
        timeline = {e["event_type"]: e for e in _timeline_of(ctx, text["artifact_id"])}
        assert timeline["claims_extracted"]["metadata"]["ai_model"] == "gpt-4o-mini"
        assert timeline["claims_extracted"]["metadata"]["ai_cost"] > 0
        with ctx.engine.connect() as conn:
            rows = conn.execute(select(func.count(), func.sum(ai_usage_log.c.cost_usd))).one()
        assert rows[0] == 1 and rows[1] > 0
        fake.script(["500", "500", "500", "500", "500", "500"])
        row = run_note(ctx, driver, "Jack Walsh was late.")
        assert row["status"] == "failed" and row["current_stage"] == "claims_extraction"
        ctx.monitor.close()


def _timeline_of(ctx, artifact_id: str) -> list[dict]:
    ctx.monitor.flush(timeout=10)
    return event_queries.artifact_timeline(ctx.engine, artifact_id)
