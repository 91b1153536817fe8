"""``/api/v1/alerts`` over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from voicewatch import alerts
from voicewatch.alerts.notify import AlertStream, Notifier
from voicewatch.clock import now_ms
from voicewatch.config import AlertThresholds
from voicewatch.store import write_transaction
from voicewatch.store.tables import ai_service_health
from voicewatch.web import api_alerts


@pytest.fixture
def server(live_server: Any) -> Any:
    """The live server, with the alert routes (until app.py registers them itself)."""
    app = live_server.app
    if not any(getattr(r, "path", "") == "/api/v1/alerts" for r in app.routes):
        app.include_router(api_alerts.router)
    return live_server


def _set_circuit(server: Any, service: str, state: str) -> None:
    with write_transaction(server.engine) as conn:
        conn.execute(ai_service_health.delete().where(ai_service_health.c.service == service))
        conn.execute(
            ai_service_health.insert().values(
                service=service, status="down", circuit_breaker_state=state, updated_at=now_ms()
            )
        )


def _check(server: Any, at: int | None = None) -> alerts.HealthReport:
    return alerts.check_health(
        server.engine, at or now_ms(), AlertThresholds(), notifier=Notifier(stream=AlertStream())
    )


def test_staff_lists_active_and_all_alerts(server: Any) -> None:
    _set_circuit(server, "transcription", "open")
    _set_circuit(server, "claims", "open")
    start = now_ms()
    _check(server, start)
    _set_circuit(server, "claims", "closed")
    _check(server, start + 1000)
    with httpx.Client(base_url=server.url, headers=server.headers()) as client:
        active = client.get("/api/v1/alerts")
        assert active.status_code == 200, active.text
        body = active.json()
        assert body["state"] == "active"
        assert [(a["scope"], a["state"]) for a in body["items"]] == [("transcription", "active")]
        item = body["items"][0]
        assert item["alert_kind"] == "circuit_breaker_open" and item["severity"] == "critical"
        assert item["acknowledged"] is False and item["acknowledged_by"] is None
        assert item["details"] == {"service": "transcription", "state": "open"}

        every = client.get("/api/v1/alerts", params={"state": "all"}).json()["items"]
        assert sorted((a["scope"], a["state"]) for a in every) == [
            ("claims", "resolved"),
            ("transcription", "active"),
        ]
        filtered = client.get("/api/v1/alerts", params={"state": "all", "severity": "warning"})
        assert filtered.json()["items"] == []

        bad = client.get("/api/v1/alerts", params={"state": "open"})
        assert bad.status_code == 422 and "state" in bad.json()["error"]


def test_acknowledge_records_the_caller_once(server: Any) -> None:
    _set_circuit(server, "transcription", "open")
    [raised] = _check(server).raised
    with httpx.Client(base_url=server.url, headers=server.headers()) as client:
        before = now_ms()
        first = client.post(f"/api/v1/alerts/{raised['id']}/acknowledge")
        assert first.status_code == 200, first.text
        acked = first.json()
        assert acked["id"] == raised["id"] and acked["state"] == "active"
        assert acked["acknowledged_by"] == "test staff"  # the token's principal
        assert before <= acked["acknowledged_at"] <= now_ms()

        second = client.post(f"/api/v1/alerts/{raised['id']}/acknowledge").json()
        assert second["acknowledged_at"] == acked["acknowledged_at"]

        listed = client.get("/api/v1/alerts").json()["items"]
        assert [(a["id"], a["acknowledged"]) for a in listed] == [(raised["id"], True)]


@pytest.mark.parametrize("alert_id", ["424242", "abc", "99999999999999999999", "-1", "0"])
def test_acknowledging_an_unknown_alert_is_404(server: Any, alert_id: str) -> None:
    response = httpx.post(
        f"{server.url}/api/v1/alerts/{alert_id}/acknowledge", headers=server.headers()
    )
    assert response.status_code == 404
    assert response.json() == {"error": "unknown alert", "detail": None}


def test_alert_routes_are_for_staff_only(server: Any) -> None:
    _set_circuit(server, "transcription", "open")
    [raised] = _check(server).raised
    routes = [("GET", "/api/v1/alerts"), ("POST", f"/api/v1/alerts/{raised['id']}/acknowledge")]
    for method, path in routes:
        anonymous = httpx.request(method, server.url + path)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.json()["error"] == "authentication required"
        ingest = httpx.request(
            method, server.url + path, headers=server.headers(server.ingest_token)
        )
        assert ingest.status_code == 403, (method, path)
        assert ingest.json()["error"] == "platform staff only"
    assert alerts.get_alert(server.engine, raised["id"])["acknowledged_at"] is None  # type: ignore[index]
