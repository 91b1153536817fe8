"""The live pages (overview, pipeline, stage detail, alerts) in a real Chromium."""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import httpx
import pytest

from pipeline_helpers import make_pipeline
from test_stream import failing_burst
from voicewatch import alerts, clock, events, simulate
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.intake import submit_note

PAGES = ("/", "/pipeline", "/pipeline/transcription", "/alerts")
PARTIALS = (
    "/overview/live",
    "/pipeline/live",
    "/pipeline/live?stage=transcription",
    "/alerts/live",
)


def seed(server: Any) -> dict[str, Any]:
    """A simulated day of traffic, some in flight, and real pipeline artifacts (one failed)."""
    now = clock.now_ms()
    traffic = simulate.traffic(
        random.Random(7), artifacts=40, start_ms=now - 6 * 3_600_000, end_ms=now,
        failure_rate=0.3,
    )  # fmt: skip
    in_flight = simulate.traffic(random.Random(8), artifacts=3, start_ms=now - 60_000, end_ms=now)
    started = [e for e in in_flight if e["event_type"] in ("artifact_received",)]
    assert events.log_events(server.engine, traffic + started).accepted
    ctx, driver = make_pipeline(server.settings.database_url)
    failed = repo.create_artifact(
        ctx.engine, organization_id="org_clg", coach_user_id="coach_2",
        source_channel="whatsapp", text="Sean Murphy hurt his ankle at training.",
        fail_plan="transcription",
    )  # fmt: skip
    driver.enqueue("transcription", failed["artifact_id"], 0)
    done = submit_note(
        ctx, organization_id="org_clg", coach_user_id="coach_1",
        text="Aoife Kelly was brilliant on the frees.",
    )  # fmt: skip
    driver.drain()
    ctx.monitor.flush(timeout=10)
    ctx.monitor.close()
    return {"failed": failed["artifact_id"], "completed": done["artifact_id"]}


def wait_live(browser: Any) -> None:
    """The page's stream is connected (the live dot turns on)."""
    browser.page.wait_for_selector("#live-dot.on", timeout=5000)


def test_every_live_page_renders_a_simulated_run(staff_browser) -> None:
    seeded = seed(staff_browser.server)
    page = staff_browser.page

    staff_browser.goto("/")
    assert page.locator(".live-cards .stat").count() == 6
    assert page.locator("svg.flow .flow-node").count() == 6  # five stages + confirmation
    assert page.locator("#feed tr").count() == 20
    assert page.locator("#feed-empty").is_hidden()
    assert page.locator("[data-card=completed] .value").inner_text() != "0"
    assert page.locator("[data-card=ai] .value").inner_text() == "Healthy"
    wait_live(staff_browser)

    # a flow node opens its stage detail
    page.click("svg.flow .flow-node[data-stage=transcription]")
    page.wait_for_url("**/pipeline/transcription")
    assert page.locator(".flow-node.selected").get_attribute("data-stage") == "transcription"
    page.wait_for_selector("#latency-chart canvas", timeout=3000)
    assert page.locator("#latency-chart .u-axis").count() >= 2
    assert "injected_fault" in page.locator("#error-breakdown").inner_text()
    retry = page.locator(f'#retry-queue tr[data-artifact-id="{seeded["failed"]}"] button')
    assert retry.get_attribute("data-post") == f"/api/v1/artifacts/{seeded['failed']}/retry"
    assert retry.get_attribute("data-body") == '{"stage": "transcription"}'

    staff_browser.goto("/pipeline")
    assert page.locator("svg.flow.flow-large .flow-node").count() == 6  # five stages + confirmation
    assert page.locator("#active-artifacts .art-card").count() >= 3
    assert page.locator("#stage-artifacts").count() == 0

    staff_browser.goto("/alerts")
    assert "No unacknowledged alerts" in page.locator("#active-alerts").inner_text()
    assert "No alerts yet" in page.locator("#alert-history").inner_text()
    assert staff_browser.console_errors == []


def test_retry_button_queues_a_retry(staff_browser) -> None:
    seeded = seed(staff_browser.server)
    page = staff_browser.page
    staff_browser.goto("/pipeline/transcription")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f'#retry-queue tr[data-artifact-id="{seeded["failed"]}"] button')
    page.wait_for_selector(f".toast:has-text('Retry queued for {seeded['failed']}')", timeout=5000)
    assert repo.get_artifact(staff_browser.server.engine, seeded["failed"])["attempt"] == 1
    assert staff_browser.console_errors == []


def test_empty_pages_say_how_to_get_data(staff_browser) -> None:
    page = staff_browser.page
    staff_browser.goto("/")
    assert "No events yet — send some with voicewatch simulate" in page.inner_text("#activity")
    staff_browser.goto("/pipeline/draft_generation")
    assert "No data for this stage" in page.inner_text("main")
    assert "No failed artifacts waiting" in page.inner_text("#retry-queue")
    assert staff_browser.console_errors == []


def test_a_posted_event_reaches_the_overview_within_two_seconds(staff_browser) -> None:
    server = staff_browser.server
    page = staff_browser.page
    staff_browser.goto("/")
    wait_live(staff_browser)
    page.evaluate("window.__notReloaded = true")
    active_before = int(page.inner_text("[data-card=active] .value"))
    event_id = str(uuid.uuid4())
    hostile = '<img src=x onerror="window.__pwned=1">'
    response = httpx.post(
        f"{server.url}/api/v1/events",
        headers=server.headers(server.staff_token),
        json={"event_id": event_id, "event_type": "artifact_received",
              "timestamp": clock.now_ms(), "artifact_id": "art_live_feed_1",
              "organization_id": "org_clg", "pipeline_stage": "ingestion",
              "error_message": hostile},
    )  # fmt: skip
    assert response.status_code == 200
    row = page.wait_for_selector(f'#feed tr[data-event-id="{event_id}"]', timeout=2000)
    assert row is not None
    assert "art_live_feed_1" in row.inner_text() and hostile in row.inner_text()
    assert page.locator("#feed img").count() == 0
    # the status cards follow without a reload
    page.wait_for_function(
        f"Number(document.querySelector('[data-card=active] .value').textContent) === "
        f"{active_before + 1}",
        timeout=3000,
    )
    assert page.evaluate("window.__notReloaded === true && window.__pwned === undefined")
    assert page.locator("#feed-empty").is_hidden()
    assert staff_browser.console_errors == []


def test_a_raised_alert_pops_a_toast_and_is_acknowledged(staff_browser) -> None:
    server = staff_browser.server
    page = staff_browser.page
    staff_browser.goto("/")
    wait_live(staff_browser)
    assert events.log_events(server.engine, failing_burst()).accepted
    report = alerts.check_health(server.engine)
    alert = next(a for a in report.raised if a["alert_kind"] == "high_failure_rate")
    toast = page.wait_for_selector(".toast.critical", timeout=3000)
    assert "high failure rate" in toast.inner_text().lower()
    page.wait_for_function(
        f"document.getElementById('alert-badge').textContent.trim() === '{len(report.active)}'",
        timeout=3000,
    )
    assert page.locator("#alert-badge").is_visible()

    staff_browser.goto("/alerts")
    card = f'[data-alert-id="{alert["id"]}"]'
    assert page.locator(f"#active-alerts {card}").count() == 1
    assert alert["message"] in page.inner_text("#active-alerts")
    assert page.locator(f"#alert-history tr{card}").count() == 1
    page.on("dialog", lambda dialog: dialog.accept())
    wait_live(staff_browser)
    page.click(f"#active-alerts {card} button:has-text('Acknowledge')")
    page.wait_for_selector(f"#active-alerts {card}", state="detached", timeout=3000)
    acked = page.wait_for_selector(f"#acked-alerts {card}", timeout=3000)
    assert re.search(r"Acknowledged by\s+staff@voicewatch\.test", acked.inner_text())
    stored = alerts.get_alert(server.engine, alert["id"])
    assert stored is not None and stored["acknowledged_by"] == "staff@voicewatch.test"
    assert stored["state"] == "active"  # acknowledging does not resolve

    # history filters narrow the table
    staff_browser.goto("/alerts?severity=warning")
    assert page.locator(f"#alert-history tr{card}").count() == 0
    staff_browser.goto("/alerts?severity=critical&kind=high_failure_rate")
    assert page.locator(f"#alert-history tr{card}").count() == 1
    assert staff_browser.console_errors == []


@pytest.mark.parametrize("path", PAGES + PARTIALS)
def test_pages_refuse_non_staff_and_send_anonymous_to_login(sqlite_server, path) -> None:
    url = f"{sqlite_server.url}{path}"
    html = {"Accept": "text/html"}
    anonymous = httpx.get(url, headers=html)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=/")
    ingest = httpx.get(url, headers={**html, **sqlite_server.headers(sqlite_server.ingest_token)})
    assert ingest.status_code == 403 and "platform staff only" in ingest.text
    staff = httpx.get(url, headers={**html, **sqlite_server.headers()})
    assert staff.status_code == 200
