"""An ingest token cannot write the built-in pipeline's events (issue 16, item 4).

Both directions: what the client forges is refused item by item (so the log
never says something the artifact table does not), and the pipeline's own
events then all land (none is dropped as a "duplicate" of a forgery).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import LiveServer
from pipeline_helpers import make_pipeline
from voicewatch import model
from voicewatch.clock import now_ms
from voicewatch.ingest_guard import RESERVED_ERROR
from voicewatch.pipeline import repository as repo
from voicewatch.store.tables import voice_pipeline_events


@pytest.fixture
def wired(db_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Any, Any]]:
    server = LiveServer(
        db_url,
        audio_dir=str(tmp_path / "audio"),
        queue_url=f"sqlite:///{tmp_path / 'queue.db'}",
    )
    ctx, driver = make_pipeline(db_url)
    server.app.state.pipeline = ctx  # notes sent over HTTP go through this pipeline
    yield server, ctx, driver
    ctx.monitor.close(timeout=10)
    ctx.engine.dispose()
    server.stop()


def _events_of(server: LiveServer, artifact_id: str) -> list[dict[str, Any]]:
    table = voice_pipeline_events
    with server.engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.artifact_id == artifact_id)).all()
    return [dict(r._mapping) for r in rows]


def _forgeries(artifact_id: str, ts: int) -> list[dict[str, Any]]:
    """Every way to claim the artifact: its ids for every type and attempt, or its id."""
    forged: list[dict[str, Any]] = []
    for name in sorted(model.EVENT_TYPE_NAMES):
        for attempt in (0, 1):
            forged.append(
                {
                    "event_id": f"{artifact_id}.{attempt}.{name}",
                    "event_type": "artifact_failed",
                    "error_message": "forged by a client",
                    "timestamp": ts,
                }
            )
    forged.append(  # a fresh id, but about our artifact
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "artifact_failed",
            "artifact_id": artifact_id,
            "organization_id": "org_clg",
            "error_message": "forged by a client",
            "timestamp": ts,
        }
    )
    return forged


def test_an_ingest_token_cannot_forge_the_pipelines_events(
    wired: tuple[LiveServer, Any, Any],
) -> None:
    server, ctx, driver = wired
    ingest = server.headers(server.ingest_token)
    note = httpx.post(
        f"{server.url}/api/v1/artifacts",
        data={
            "organization_id": "org_clg",
            "coach_user_id": "coach_1",
            "text": "Sean Murphy twisted his knee at training.",
        },
        headers=ingest,
        timeout=30,
    )
    assert note.status_code == 202, note.text
    artifact_id = note.json()["artifact_id"]
    ctx.monitor.flush(timeout=10)
    ts = now_ms()
    theirs = {
        "event_id": "ext-1",
        "event_type": "artifact_received",
        "artifact_id": "ext_art_1",
        "timestamp": ts,
    }  # another pipeline's artifact: not ours, so it lands
    batch = [theirs, *_forgeries(artifact_id, ts)]
    sent = httpx.post(f"{server.url}/api/v1/events", json=batch, headers=ingest, timeout=30)
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == list(range(1, len(batch)))
    errors = [r["error"] for r in body["rejected"]]
    assert errors[:-1] == [RESERVED_ERROR.format(field="event_id")] * (len(batch) - 2)
    assert errors[-1] == RESERVED_ERROR.format(field="artifact_id")
    only_forged = httpx.post(
        f"{server.url}/api/v1/events", json=_forgeries(artifact_id, ts), headers=ingest
    )
    assert only_forged.status_code == 422 and only_forged.json()["accepted"] == 0

    driver.drain()
    assert ctx.monitor.flush(timeout=10)
    row = repo.get_artifact(server.engine, artifact_id)
    assert row is not None and row["status"] == "completed"
    logged = _events_of(server, artifact_id)
    types = [e["event_type"] for e in logged]
    assert "artifact_failed" not in types and types.count("artifact_completed") == 1
    assert all(e["error_message"] != "forged by a client" for e in logged)
    expected = {"artifact_received", "transcription_started", "artifact_completed"}
    assert expected <= set(types), types
    ids = {e["event_id"] for e in logged}
    assert f"{artifact_id}.0.artifact_completed" in ids  # the pipeline's real event landed


def test_staff_tokens_and_the_pipelines_own_writes_are_not_refused(
    wired: tuple[LiveServer, Any, Any],
) -> None:
    """The reserved namespace binds ingest tokens only: operators may still repair."""
    server, ctx, _driver = wired
    artifact = repo.create_artifact(
        ctx.engine,
        organization_id="org_clg",
        coach_user_id="coach_1",
        source_channel="app",
        text="Jack Walsh scored twice.",
    )
    event = {
        "event_id": f"{artifact['artifact_id']}.9.note",
        "event_type": "retry_initiated",
        "artifact_id": artifact["artifact_id"],
        "timestamp": now_ms(),
    }
    sent = httpx.post(f"{server.url}/api/v1/events", json=event, headers=server.headers())
    assert sent.status_code == 200 and sent.json()["accepted"] == 1
    refused = httpx.post(
        f"{server.url}/api/v1/events",
        json={**event, "event_id": "other-id"},
        headers=server.headers(server.ingest_token),
    )
    assert refused.status_code == 422
    assert refused.json()["rejected"] == [
        {"index": 0, "error": RESERVED_ERROR.format(field="artifact_id")}
    ]
