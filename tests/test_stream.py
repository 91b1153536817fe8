"""``GET /api/v1/stream`` over plain HTTP: who may listen, events and alert changes arrive."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from voicewatch import alerts, clock
from voicewatch.alerts.notify import Notifier


def failing_burst(received: int = 6, failed: int = 3) -> list[dict[str, Any]]:
    """Events that trip the failure-rate rule: ``failed`` of ``received`` artifacts failed now."""
    now = clock.now_ms()
    out = []
    for i in range(received):
        art = f"art_burst_{uuid.uuid4().hex[:10]}"
        out.append(
            {"event_id": str(uuid.uuid4()), "event_type": "artifact_received", "timestamp": now,
             "artifact_id": art, "organization_id": "org_clg", "pipeline_stage": "ingestion"}
        )  # fmt: skip
        if i < failed:
            out.append(
                {"event_id": str(uuid.uuid4()), "event_type": "artifact_failed",
                 "timestamp": now + 1, "artifact_id": art, "organization_id": "org_clg",
                 "pipeline_stage": "transcription", "error_code": "provider_timeout",
                 "error_message": "the provider timed out"}
            )  # fmt: skip
    return out


def messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[5:])


def next_matching(stream: Iterator[dict[str, Any]], pred: Any, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    for message in stream:
        if pred(message):
            return message
        assert time.monotonic() < deadline, "the expected message did not arrive in time"
    raise AssertionError("the stream ended")


def test_stream_needs_a_staff_principal(sqlite_server) -> None:
    url = f"{sqlite_server.url}/api/v1/stream"
    assert httpx.get(url).status_code == 401
    ingest = httpx.get(url, headers=sqlite_server.headers(sqlite_server.ingest_token))
    assert ingest.status_code == 403 and ingest.json()["error"] == "platform staff only"


def test_stream_delivers_posted_events_and_alert_changes(sqlite_server) -> None:
    server = sqlite_server
    timeout = httpx.Timeout(10.0, read=5.0)
    with (
        httpx.Client(base_url=server.url, headers=server.headers(), timeout=timeout) as client,
        client.stream("GET", "/api/v1/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = messages(response.iter_lines())
        hello = next(stream)
        assert hello == {"type": "alert", "change": "sync", "alert": None, "active_count": 0}

        # an event posted after connecting arrives, as the API shows it
        event_id = str(uuid.uuid4())
        posted = client.post(
            "/api/v1/events",
            json={"event_id": event_id, "event_type": "transcription_failed",
                  "timestamp": clock.now_ms(), "artifact_id": "art_stream_1",
                  "pipeline_stage": "transcription", "error_code": "provider_timeout"},
        )  # fmt: skip
        assert posted.status_code == 200 and posted.json()["accepted"] == 1
        started = time.monotonic()
        got = next_matching(
            stream, lambda m: m["type"] == "event" and m["event"]["event_id"] == event_id, 3
        )
        assert time.monotonic() - started < 2
        assert got["event"]["artifact_id"] == "art_stream_1"
        assert got["event"]["kind"] == "failure" and "provider_timeout" in got["event"]["summary"]

        # an alert raised by another process (no in-process notification) is found by polling
        client.post("/api/v1/events", json=failing_burst())
        report = alerts.check_health(server.engine, notifier=Notifier(stream=None))
        raised = [a for a in report.raised if a["alert_kind"] == "high_failure_rate"]
        assert raised
        alert_id = raised[0]["id"]
        got = next_matching(
            stream,
            lambda m: m["type"] == "alert" and m["alert"] and m["alert"]["id"] == alert_id,
            5,
        )
        assert got["change"] == "raised" and got["active_count"] == len(report.active)

        # acknowledging in this process: the change is sent once, with who did it
        ack = client.post(f"/api/v1/alerts/{alert_id}/acknowledge")
        assert ack.status_code == 200
        got = next_matching(stream, lambda m: m["type"] == "alert", 5)
        assert got["change"] == "acknowledged" and got["alert"]["acknowledged_by"] == "test staff"

    # the last listener left: the shared poller stops
    hub = server.app.state.live_hub
    deadline = time.monotonic() + 5
    while hub.running or hub.clients:
        assert time.monotonic() < deadline, "the stream poller kept running without listeners"
        time.sleep(0.1)


def test_one_poller_serves_many_listeners(sqlite_server) -> None:
    server = sqlite_server
    timeout = httpx.Timeout(10.0, read=5.0)
    with (
        httpx.Client(base_url=server.url, headers=server.headers(), timeout=timeout) as a,
        httpx.Client(base_url=server.url, headers=server.headers(), timeout=timeout) as b,
        a.stream("GET", "/api/v1/stream") as ra,
        b.stream("GET", "/api/v1/stream") as rb,
    ):
        sa, sb = messages(ra.iter_lines()), messages(rb.iter_lines())
        next(sa), next(sb)
        hub = server.app.state.live_hub
        assert len(hub.clients) == 2 and hub.running
        event_id = str(uuid.uuid4())
        a.post(
            "/api/v1/events",
            json={"event_id": event_id, "event_type": "artifact_received",
                  "timestamp": clock.now_ms(), "artifact_id": "art_fanout"},
        )  # fmt: skip
        for stream in (sa, sb):
            got = next_matching(stream, lambda m: m["type"] == "event", 3)
            assert got["event"]["event_id"] == event_id
