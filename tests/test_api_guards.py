"""``/api/v1/budgets``, ``/rate-limits``, ``/ai-services``, ``/audit``: who may do what, bad input.

Every route against every kind of caller, over HTTP on a real server: anonymous
(401), an ingest token (403), a staff token, a staff session (reads; changes
need the CSRF token: 403 without it).
"""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import STAFF_EMAIL, STAFF_PASSWORD
from voicewatch.auth import create_staff
from voicewatch.clock import now_ms
from voicewatch.pipeline import clubs
from voicewatch.pipeline.breaker import CircuitBreaker

READS = [
    "/api/v1/budgets",
    "/api/v1/budgets/org_clg",
    "/api/v1/rate-limits",
    "/api/v1/ai-services",
    "/api/v1/ai-services/claims",
    "/api/v1/audit",
]
WRITES = [
    ("PUT", "/api/v1/budgets/org_clg", {"daily_usd": 3.0, "warn_at": 0.7}),
    ("PUT", "/api/v1/rate-limits/org_clg/claims", {"per_minute": 9}),
    ("POST", "/api/v1/ai-services/claims/reset", None),
]


def _open_circuit(engine) -> None:
    breaker = CircuitBreaker(engine, "claims", emit=None, failure_threshold=1)
    breaker.record_failure(now_ms(), "provider down")


def _session(server) -> tuple[httpx.Client, str]:
    create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    client = httpx.Client(base_url=server.url)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post(
        "/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token}
    )
    page = client.get("/login")
    return client, re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_every_guard_route_for_every_caller(sqlite_server) -> None:
    server = sqlite_server
    clubs.upsert_organization(server.engine, "org_clg", "Clonmore GAA")
    with httpx.Client(base_url=server.url) as anonymous:
        for path in READS:
            assert anonymous.get(path).status_code == 401, path
        for method, path, body in WRITES:
            assert anonymous.request(method, path, json=body).status_code == 401, path
    with httpx.Client(base_url=server.url, headers=server.headers(server.ingest_token)) as ingest:
        for path in READS:
            assert ingest.get(path).status_code == 403, path
        for method, path, body in WRITES:
            refused = ingest.request(method, path, json=body)
            assert refused.status_code == 403 and refused.json()["error"], path
    _open_circuit(server.engine)
    with httpx.Client(base_url=server.url, headers=server.headers()) as staff:
        for method, path, body in WRITES:
            assert staff.request(method, path, json=body).status_code == 200, path
        for path in READS:
            assert staff.get(path).status_code == 200, path
        actions = [e["action"] for e in staff.get("/api/v1/audit").json()["items"]]
        assert actions == ["breaker.reset", "rate_limit.set", "budget.set"]
    _open_circuit(server.engine)
    session, csrf = _session(server)
    try:
        for path in READS:
            assert session.get(path).status_code == 200, path
        for method, path, body in WRITES:
            assert session.request(method, path, json=body).status_code == 403, path
        for method, path, body in WRITES:
            done = session.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
            assert done.status_code == 200, (path, done.text)
        reset = session.get("/api/v1/audit", params={"target": "service:claims"}).json()["items"]
        assert reset[0]["actor"] == STAFF_EMAIL and reset[0]["before"] == {"state": "open"}
    finally:
        session.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("PUT", "/api/v1/budgets/org_clg", {"daily_usd": -1}, 422, "daily_usd"),
        ("PUT", "/api/v1/budgets/org_clg", {"daily_usd": 1, "warn_at": 1.5}, 422, "warn_at"),
        ("PUT", "/api/v1/budgets/org_clg", {"daily_usd": "lots"}, 422, "daily_usd"),
        ("PUT", "/api/v1/budgets/org_nope", {"daily_usd": 1}, 404, "unknown organization"),
        ("PUT", "/api/v1/rate-limits/org_clg/nope", {"per_minute": 1}, 422, "service must be"),
        ("PUT", "/api/v1/rate-limits/org_clg/claims", {"per_minute": -2}, 422, "per_minute"),
        ("POST", "/api/v1/ai-services/nope/reset", None, 404, "unknown AI service"),
        ("GET", "/api/v1/budgets/org_clg", None, 404, "no budget"),
    ],
)
def test_bad_guard_input_gets_a_clear_error(
    live_server, method: str, path: str, body: object, status: int, says: str
) -> None:
    clubs.upsert_organization(live_server.engine, "org_clg", "Clonmore GAA")
    with httpx.Client(base_url=live_server.url, headers=live_server.headers()) as staff:
        response = staff.request(method, path, json=body)
        assert response.status_code == status, response.text
        assert says in response.text and set(response.json()) >= {"error"}
        assert staff.get("/api/v1/audit").json()["items"] == []  # nothing changed


def test_the_platform_budget_and_a_too_large_body(sqlite_server) -> None:
    with httpx.Client(base_url=sqlite_server.url, headers=sqlite_server.headers()) as staff:
        done = staff.put("/api/v1/budgets/platform", json={"daily_usd": 50})
        assert done.status_code == 200 and done.json()["organization_id"] == "platform"
        listed = staff.get("/api/v1/budgets").json()
        assert listed["items"][0]["organization_id"] == "platform"
        assert listed["cost_model"]["estimated"] is True
        assert listed["cost_model"]["stands_in_for"]["rules"] == "gpt-4o-mini"
        big = staff.put(
            "/api/v1/budgets/platform",
            content=b'{"daily_usd": 1, "x": "' + b"a" * 10_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413
