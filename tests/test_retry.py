"""Retrying a failed artifact from the API: it really runs again, with history and the 409 rules."""

from __future__ import annotations

import httpx
import pytest

from pipeline_helpers import make_pipeline, run_note
from voicewatch import event_queries
from voicewatch.pipeline import repository as repo
from voicewatch.retry import RetryError, retry_history, start_retry


def _failed_artifact(ctx, driver, stage: str = "transcription") -> str:
    row = run_note(
        ctx,
        driver,
        "Sean Murphy twisted his knee at training, out for two weeks.",
        source_channel="whatsapp",
        fail_plan=stage,
    )
    assert row["status"] == "failed"
    return row["artifact_id"]


def test_a_failed_transcription_is_retried_from_the_api_and_completes(live_server) -> None:
    ctx, driver = make_pipeline(live_server.settings.database_url)
    live_server.app.state.enqueue = driver.enqueue
    artifact_id = _failed_artifact(ctx, driver)
    url = f"{live_server.url}/api/v1/artifacts/{artifact_id}/retry"
    first = httpx.post(url, json={"stage": "transcription"}, headers=live_server.headers())
    assert first.status_code == 202, first.text
    assert first.json()["retry_attempt"] == 1
    # the retry is queued but not yet run: a second one is refused
    second = httpx.post(url, json={"stage": "full"}, headers=live_server.headers())
    assert second.status_code == 409 and "still running" in second.json()["error"]
    ingest = httpx.post(
        url, json={"stage": "full"}, headers=live_server.headers(live_server.ingest_token)
    )
    assert ingest.status_code == 403
    driver.drain()
    row = repo.get_artifact(ctx.engine, artifact_id)
    assert row is not None and row["status"] == "completed" and row["attempt"] == 1
    history = retry_history(ctx.engine, artifact_id)
    assert [(h["attempt"], h["stage"], h["status"]) for h in history] == [
        (1, "transcription", "succeeded")
    ]
    ctx.monitor.flush(timeout=10)
    kinds = [e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact_id)]
    assert kinds.count("artifact_failed") == 1
    assert kinds.index("retry_initiated") < kinds.index("retry_succeeded")
    assert kinds[-1] == "retry_succeeded"
    detail = httpx.get(
        f"{live_server.url}/api/v1/artifacts/{artifact_id}", headers=live_server.headers()
    ).json()
    assert detail["artifact"]["status"] == "completed" and len(detail["retries"]) == 1
    ctx.monitor.close()


def test_history_lists_a_failed_and_a_succeeded_attempt(db_url: str) -> None:
    ctx, driver = make_pipeline(db_url)
    artifact_id = _failed_artifact(ctx, driver, stage="claims_extraction")
    # retrying entity resolution is refused: claims were never extracted
    with pytest.raises(RetryError) as refused:
        start_retry(
            ctx.engine, artifact_id, "entity_resolution", requested_by="ops", enqueue=driver.enqueue
        )
    assert refused.value.status == 409
    start_retry(
        ctx.engine, artifact_id, "claims_extraction", requested_by="ops", enqueue=driver.enqueue
    )
    # make this retry fail too: the stage is interrupted by a second fault we plant
    repo_row = repo.get_artifact(ctx.engine, artifact_id)
    assert repo_row is not None and repo_row["status"] == "transcribed"
    from sqlalchemy import update

    from voicewatch.store import write_transaction
    from voicewatch.store.tables import voice_note_transcripts

    with write_transaction(ctx.engine) as conn:
        conn.execute(
            update(voice_note_transcripts)
            .where(voice_note_transcripts.c.artifact_id == artifact_id)
            .values(artifact_id="moved-away")
        )
    driver.drain()
    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "failed"
    start_retry(ctx.engine, artifact_id, "full", requested_by="ops", enqueue=driver.enqueue)
    driver.drain()
    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "completed"
    outcomes = [
        (h["attempt"], h["stage"], h["status"], h["requested_by"])
        for h in retry_history(ctx.engine, artifact_id)
    ]
    assert outcomes == [(1, "claims_extraction", "failed", "ops"), (2, "full", "succeeded", "ops")]
    with pytest.raises(RetryError) as done:
        start_retry(ctx.engine, artifact_id, "full", requested_by="ops", enqueue=driver.enqueue)
    assert done.value.status == 409  # completed artifacts are not retried
    with pytest.raises(RetryError) as unknown:
        start_retry(ctx.engine, "art_nope", "full", requested_by="ops", enqueue=driver.enqueue)
    assert unknown.value.status == 404
    ctx.monitor.close()
