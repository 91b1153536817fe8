"""The guard-rails page and the overview's AI-service card, in real Chromium."""

from __future__ import annotations

from conftest import STAFF_EMAIL
from voicewatch import event_queries, guardrails
from voicewatch.clock import now_ms
from voicewatch.events import log_events
from voicewatch.pipeline import clubs
from voicewatch.pipeline.breaker import CircuitBreaker


def _spend(engine, org: str, usd: float, n: int) -> None:
    """Cost-bearing stage events (what the cost cards sum) for ``org``, now."""
    now = now_ms()
    log_events(
        engine,
        [
            {
                "event_id": f"cost.{org}.{i}",
                "event_type": "claims_extracted",
                "artifact_id": f"art_{org}_{i}",
                "organization_id": org,
                "pipeline_stage": "claims_extraction",
                "duration_ms": 5,
                "metadata": {"ai_cost": usd, "ai_model": "rules", "claim_count": 1},
                "timestamp": now - 1000,
            }
            for i in range(n)
        ],
    )


def test_the_budgets_panel_and_the_circuit_reset_button(staff_browser) -> None:
    server, page = staff_browser.server, staff_browser.page
    engine = server.engine
    for org, name in (("org_clg", "Clonmore GAA"), ("org_rvfc", "Riverside FC")):
        clubs.upsert_organization(engine, org, name)
    now = now_ms()
    guardrails.set_budget(engine, "org_clg", 1.0, 0.8, actor="ops", now=now)
    guardrails.set_budget(engine, "org_rvfc", 1.0, 0.5, actor="ops", now=now)
    _spend(engine, "org_clg", 0.3, 4)  # $1.20: exceeded
    _spend(engine, "org_rvfc", 0.2, 3)  # $0.60: past the 50% warning
    CircuitBreaker(engine, "claims", emit=None, failure_threshold=2).record_failure(now, "x")
    CircuitBreaker(engine, "claims", emit=None, failure_threshold=2).record_failure(now, "y")

    staff_browser.goto("/")
    card = page.locator('[data-card="ai"] li[data-service="claims"]')
    assert "open" in card.inner_text() and "2 failures" in card.inner_text()

    staff_browser.goto("/guards")
    clg = page.locator('#budget-table tr[data-budget="org_clg"]')
    assert "Clonmore GAA" in clg.inner_text()
    assert clg.locator('[data-field="state"]').inner_text() == "exceeded"
    assert clg.locator('[data-field="spend"]').inner_text() == "$1.20"
    assert clg.locator("meter").get_attribute("value") == "1.2"
    rvfc = page.locator('#budget-table tr[data-budget="org_rvfc"]')
    assert rvfc.locator('[data-field="state"]').inner_text() == "warning"
    assert page.locator("#estimated-label").is_visible()
    claims = page.locator('.service[data-service="claims"]')
    assert claims.locator('[data-field="state"]').inner_text() == "open"

    claims.locator("button").click()
    page.wait_for_url("**/guards?reset=claims*")
    claims = page.locator('.service[data-service="claims"]')
    assert claims.locator('[data-field="state"]').inner_text() == "closed"
    assert "breaker.reset" in page.locator("#changes").inner_text()
    closed, _ = event_queries.recent_events(
        engine, event_queries.EventFilter(event_types=("circuit_breaker_closed",))
    )
    assert len(closed) == 1 and STAFF_EMAIL in closed[0]["error_message"]
    assert staff_browser.console_errors == []


def test_the_reset_form_needs_the_csrf_token(sqlite_server) -> None:
    import httpx

    from test_api_guards import _session

    CircuitBreaker(sqlite_server.engine, "claims", emit=None, failure_threshold=1).record_failure(
        now_ms(), "x"
    )
    client, csrf = _session(sqlite_server)
    try:
        refused = client.post("/guards/ai-services/claims/reset", data={})
        assert refused.status_code == 403
        done = client.post("/guards/ai-services/claims/reset", data={"csrf_token": csrf})
        assert done.status_code == 303
    finally:
        client.close()
    with httpx.Client(base_url=sqlite_server.url) as anonymous:
        to_login = anonymous.post("/guards/ai-services/claims/reset")
        assert to_login.status_code in (302, 303, 307) and "/login" in to_login.headers["location"]
    headers = sqlite_server.headers(sqlite_server.ingest_token)
    with httpx.Client(base_url=sqlite_server.url, headers=headers) as ingest:
        assert ingest.post("/guards/ai-services/claims/reset").status_code == 403
        assert ingest.get("/guards").status_code == 403
