"""``GET /metrics`` as Prometheus text for a staff token (the page for a browser session)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from voicewatch.clock import now_ms


def test_prometheus_text_for_a_staff_token(live_server) -> None:
    now = now_ms()
    batch = [
        {
            "event_id": "p1",
            "event_type": "artifact_received",
            "artifact_id": "a1",
            "timestamp": now - 3000,
        },
        {
            "event_id": "p2",
            "event_type": "artifact_failed",
            "artifact_id": "a1",
            "timestamp": now - 1000,
        },
        {
            "event_id": "p3",
            "event_type": "artifact_received",
            "artifact_id": "a2",
            "timestamp": now - 500,
        },
    ]
    httpx.post(f"{live_server.url}/api/v1/events", json=batch, headers=live_server.headers())
    response = httpx.get(f"{live_server.url}/metrics", headers=live_server.headers())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if not s.labels
    }
    assert samples["voicewatch_artifacts_received_60m"] == 2
    assert samples["voicewatch_artifacts_failed_60m"] == 1
    assert samples["voicewatch_failure_rate_60m"] == 0.5
    assert samples["voicewatch_active_artifacts"] == 1
    assert "voicewatch_stage_queue_depth" in response.text
    assert (
        httpx.get(
            f"{live_server.url}/metrics", headers=live_server.headers(live_server.ingest_token)
        ).status_code
        == 403
    )
    anonymous = httpx.get(f"{live_server.url}/metrics", follow_redirects=False)
    assert anonymous.status_code in (401, 303)
