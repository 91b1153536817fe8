"""The data pages — artifacts grid and detail, event log, metrics — in a real browser.

A real server on SQLite, a real pipeline run (``make_pipeline``: the stages run
when the test drains its queue) and Debian's Chromium through Playwright.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from pipeline_helpers import QueueDriver, make_pipeline
from voicewatch import event_queries, events, metrics
from voicewatch.clock import hour_start, now_ms
from voicewatch.dashboard import filters as page_filters
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.intake import submit_note
from voicewatch.pipeline.stages import emit_received
from voicewatch.store.tables import voice_note_artifacts

NOTES = [
    "Sean Murphy went over on his ankle at training and will miss Saturday. "
    "Aoife Kelly was brilliant on the frees, her striking has really come on.",
    "Jack Walsh needs to work on his first touch. Liam Byrne was captain today and led well.",
    "Ciarán O'Brien scored two points and his fitness is improving week on week.",
]
HOSTILE_ERROR = "<script>alert(1)</script>"
HOSTILE_ORG = '<img src=x onerror="alert(2)">Evil & <b>Co</b>'


@dataclass
class Run:
    ctx: Any
    driver: QueueDriver
    completed: list[str]
    failed: str


def _seed(server: Any, *, hostile: bool = False) -> Run:
    """Three notes completed, one failed at claims extraction (a retry will succeed)."""
    ctx, driver = make_pipeline(server.settings.database_url)
    clubs.upsert_organization(ctx.engine, "org_two", "Ballyduff Camogie")
    completed = [
        submit_note(ctx, organization_id="org_clg", coach_user_id="coach_1", text=NOTES[0])[
            "artifact_id"
        ],
        submit_note(
            ctx,
            organization_id="org_clg",
            coach_user_id="coach_2",
            source_channel="whatsapp",
            text=NOTES[1],
        )["artifact_id"],
        submit_note(ctx, organization_id="org_two", coach_user_id="coach_3", text=NOTES[2])[
            "artifact_id"
        ],
    ]
    if hostile:
        clubs.upsert_organization(ctx.engine, "org_evil", HOSTILE_ORG)
    failing = repo.create_artifact(
        ctx.engine,
        organization_id="org_evil" if hostile else "org_clg",
        coach_user_id="coach_4",
        source_channel="whatsapp",
        text=NOTES[1],
        fail_plan="claims_extraction",
    )
    emit_received(ctx, failing)
    driver.enqueue("transcription", failing["artifact_id"], 0)
    driver.drain()
    assert ctx.monitor.flush(timeout=10)
    if hostile:
        with ctx.engine.begin() as conn:
            conn.execute(
                update(voice_note_artifacts)
                .where(voice_note_artifacts.c.artifact_id == failing["artifact_id"])
                .values(error_message=HOSTILE_ERROR)
            )
        events.log_events(
            ctx.engine,
            [
                {
                    "event_id": "evt-hostile",
                    "event_type": "transcription_failed",
                    "artifact_id": failing["artifact_id"],
                    "organization_id": "org_evil",
                    "pipeline_stage": "transcription",
                    "error_message": HOSTILE_ERROR,
                    "error_code": "<b>bold</b>",
                    "timestamp": now_ms(),
                }
            ],
        )
    assert repo.get_artifact(ctx.engine, failing["artifact_id"])["status"] == "failed"
    return Run(ctx, driver, completed, failing["artifact_id"])


@pytest.fixture
def run(sqlite_server: Any) -> Iterator[Run]:
    seeded = _seed(sqlite_server)
    yield seeded
    seeded.ctx.monitor.close()


@pytest.fixture
def browser_page(staff_browser: Any) -> Any:
    # the login lands on "/", which this test does not need; only our pages' errors count
    staff_browser.console_errors.clear()
    return staff_browser


def _statuses(page: Any) -> dict[str, str]:
    rows = page.locator("#artifact-grid tr.artifact-row")
    return {
        rows.nth(i).get_attribute("data-artifact-id"): rows.nth(i)
        .locator("[data-status]")
        .get_attribute("data-status")
        for i in range(rows.count())
    }


# --- every page renders a simulated run -------------------------------------------------


def test_every_data_page_renders_a_simulated_run(
    sqlite_server: Any, run: Run, browser_page: Any
) -> None:
    metrics.aggregate_hour(sqlite_server.engine, hour_start(now_ms()))
    page = browser_page.page

    browser_page.goto("/artifacts")
    statuses = _statuses(page)
    assert statuses == {**dict.fromkeys(run.completed, "completed"), run.failed: "failed"}
    assert "Clonmore GAA" in page.locator("#artifact-grid").inner_text()
    row = page.locator(f'tr.artifact-row[data-artifact-id="{run.completed[0]}"]')
    assert row.locator("td").nth(5).inner_text().strip() not in ("", "—", "0")  # claims counted
    # expand a row: its claims, resolutions, drafts and timeline come in as a partial
    row.locator("td").nth(3).click()
    expanded = page.locator(f'tr.expand-row[data-for="{run.completed[0]}"]')
    expanded.locator(".claim").first.wait_for()
    assert "injury" in expanded.inner_text()
    assert "claims_extracted" in expanded.locator(".timeline").inner_text()
    # the failed row offers a retry, the completed ones do not
    assert page.locator(f'tr[data-artifact-id="{run.failed}"] button[data-post]').count() == 1
    assert row.locator("button[data-post]").count() == 0
    # compact mode keeps the key columns only
    page.click("#compact-toggle")
    page.wait_for_url("**compact=1**")
    headers = page.locator("#artifact-grid thead th").all_text_contents()
    assert headers == ["Artifact", "Status", "Org", "Created"]

    browser_page.goto(f"/artifacts/{run.completed[0]}")
    timeline = page.locator(".timeline").inner_text()
    assert "artifact_received" in timeline and "artifact_completed" in timeline
    assert page.locator("#artifact-status").inner_text() == "completed"
    assert "Sean Murphy" in page.locator(".transcript").inner_text()
    assert page.locator(".claim").count() >= 2
    # completed: every retry button is disabled, with the reason
    buttons = page.locator("#retry-panel button")
    assert buttons.count() == 4 and all(
        buttons.nth(i).is_disabled() for i in range(buttons.count())
    )
    assert "only failed artifacts" in page.locator("#retry-panel").inner_text()

    browser_page.goto("/events")
    assert page.locator("#event-rows tr.event-row").count() == 50  # one page, newest first
    stamps = page.locator("#event-rows tr.event-row td:first-child").all_inner_texts()
    assert stamps == sorted(stamps, reverse=True)
    # clicking a row opens its full payload
    page.locator("#event-rows tr.event-row").first.locator("td").nth(2).click()
    assert page.locator("#event-dialog").is_visible()
    assert '"event_id"' in page.locator("#event-dialog-body").inner_text()
    page.keyboard.press("Escape")
    # "Load more" appends the next page by cursor
    total = len(list(event_queries.iter_events(sqlite_server.engine, event_queries.EventFilter())))
    assert total > 50
    page.click("#load-more")
    page.wait_for_function(
        f"document.querySelectorAll('#event-rows tr.event-row').length == {total}"
    )
    assert page.locator("#load-more").is_hidden()

    browser_page.goto("/metrics?range=24h")
    cards = page.locator("#metric-cards")
    assert cards.locator('[data-card="received"]').inner_text() == "4"
    assert cards.locator('[data-card="completion_rate"]').inner_text() == "75.0%"
    for chart in ("throughput", "latency", "errors", "confidence", "cost"):
        assert page.locator(f"#chart-{chart} canvas").count() == 1, chart
        assert page.locator(f"#chart-{chart} .u-legend").count() == 1, chart
    orgs = page.locator("#org-breakdown").inner_text()
    assert "Clonmore GAA" in orgs and "Ballyduff Camogie" in orgs
    # the chart data sits in the page as JSON
    assert page.locator("#metrics-data").count() == 1

    assert browser_page.console_errors == []


def test_metrics_without_history_explains_itself(sqlite_server: Any, browser_page: Any) -> None:
    page = browser_page.page
    browser_page.goto("/metrics?range=1h")
    assert page.locator("#metrics-empty").is_visible()
    assert "No snapshots" in page.locator("#metrics-empty").inner_text()
    assert page.locator("#charts").count() == 0
    assert browser_page.console_errors == []


# --- filters ------------------------------------------------------------------------------


def test_filters_narrow_the_grid_and_the_event_log(
    sqlite_server: Any, run: Run, browser_page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = browser_page.page
    browser_page.goto("/artifacts")
    assert len(_statuses(page)) == 4
    page.select_option("#artifact-filters select[name=status]", "failed")
    page.click("#artifact-filters button[type=submit]")
    page.wait_for_url("**status=failed**")
    assert _statuses(page) == {run.failed: "failed"}

    page.select_option("#artifact-filters select[name=status]", "")
    page.select_option("#artifact-filters select[name=organization_id]", label="Ballyduff Camogie")
    page.click("#artifact-filters button[type=submit]")
    page.wait_for_url("**organization_id=org_two**")
    assert list(_statuses(page)) == [run.completed[2]]

    browser_page.goto("/artifacts?source_channel=whatsapp")
    assert set(_statuses(page)) == {run.completed[1], run.failed}
    browser_page.goto(f"/artifacts?q={run.completed[0][:12]}")
    assert run.completed[0] in _statuses(page)
    browser_page.goto("/artifacts?from=2001-01-01&to=2001-01-02")
    assert _statuses(page) == {}
    assert "No artifacts match" in page.inner_text("main")

    # cursor pagination carries the filters
    ctx = run.ctx
    for _ in range(3):
        submit_note(ctx, organization_id="org_two", coach_user_id="coach_9", text=NOTES[2])
    ctx.monitor.flush(timeout=10)
    monkeypatch.setattr(page_filters, "PAGE_SIZE", 2)
    browser_page.goto("/artifacts?organization_id=org_two")
    first = list(_statuses(page))
    assert len(first) == 2
    page.click("#next-page")
    page.wait_for_url("**cursor=**")
    assert "organization_id=org_two" in page.url
    second = list(_statuses(page))
    assert len(second) == 2 and not set(first) & set(second)
    monkeypatch.undo()

    browser_page.goto("/events")
    page.select_option("#event-filters select[name=event_type]", ["claims_extracted"])
    page.click("#event-filters button[type=submit]")
    page.wait_for_url("**event_type=claims_extracted**")
    types = {
        page.locator("#event-rows tr.event-row").nth(i).get_attribute("data-event-type")
        for i in range(page.locator("#event-rows tr.event-row").count())
    }
    assert types == {"claims_extracted"}
    assert page.locator("#event-rows tr.event-row").count() == 3

    page.check("#event-filters input[name=errors_only]")
    page.select_option("#event-filters select[name=event_type]", [])
    page.click("#event-filters button[type=submit]")
    page.wait_for_url("**errors_only=true**")
    types = set(
        page.locator("#event-rows tr.event-row").evaluate_all(
            "rows => rows.map(r => r.dataset.eventType)"
        )
    )
    assert types == {"claims_extraction_failed", "artifact_failed"}
    assert browser_page.console_errors == []


# --- retry --------------------------------------------------------------------------------


def test_a_failed_artifact_is_retried_from_its_detail_page(
    sqlite_server: Any, run: Run, browser_page: Any
) -> None:
    sqlite_server.app.state.enqueue = run.driver.enqueue
    page = browser_page.page
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    browser_page.goto(f"/artifacts/{run.failed}")
    assert page.locator("#artifact-status").inner_text() == "failed"
    assert "simulated transient fault" in page.locator("#artifact-error").inner_text()
    panel = page.locator("#retry-panel")
    # after transcription: full, transcription, claims can run; resolution cannot yet
    assert panel.locator('button[data-retry-stage="claims_extraction"]').is_enabled()
    assert panel.locator('button[data-retry-stage="entity_resolution"]').is_disabled()
    assert "never got past transcription" in (
        panel.locator('button[data-retry-stage="entity_resolution"]').get_attribute("title")
    )
    with page.expect_navigation():  # data-reload: the page reloads once the retry is queued
        panel.locator('button[data-retry-stage="claims_extraction"]').click()
    assert dialogs and "claims extraction" in dialogs[0]
    assert run.driver.pending, "the retry queued the stage"
    assert page.locator("#retry-history").inner_text().count("running") == 1

    run.driver.drain()
    assert run.ctx.monitor.flush(timeout=10)
    browser_page.goto(f"/artifacts?q={run.failed}")
    assert _statuses(page) == {run.failed: "completed"}
    browser_page.goto(f"/artifacts/{run.failed}")
    history = page.locator("#retry-history").inner_text()
    assert "claims_extraction" in history and "succeeded" in history
    assert "staff@voicewatch.test" in history
    assert "retry_succeeded" in page.locator(".timeline").inner_text()
    assert browser_page.console_errors == []


# --- CSV export ---------------------------------------------------------------------------


def test_csv_export_downloads_exactly_the_filtered_rows(
    sqlite_server: Any, run: Run, browser_page: Any
) -> None:
    page = browser_page.page
    browser_page.goto("/events?event_type=claims_extracted&event_type=artifact_failed")
    href = page.locator("#export-csv").get_attribute("href")
    assert href.startswith("/api/v1/events.csv?")
    response = page.request.get(sqlite_server.url + href)  # the session cookie authorises it
    assert response.ok and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text())))
    expected = event_queries.recent_events(
        sqlite_server.engine,
        event_queries.EventFilter(event_types=("claims_extracted", "artifact_failed")),
        limit=500,
    )[0]
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in expected]
    assert {r["event_type"] for r in rows} == {"claims_extracted", "artifact_failed"}
    assert len(rows) == 4  # 3 notes extracted, 1 failed

    browser_page.goto(f"/events?artifact_id={run.completed[0]}&pipeline_stage=transcription")
    href = page.locator("#export-csv").get_attribute("href")
    rows = list(csv.DictReader(io.StringIO(page.request.get(sqlite_server.url + href).text())))
    assert rows and all(
        r["artifact_id"] == run.completed[0] and r["pipeline_stage"] == "transcription"
        for r in rows
    )
    assert len(rows) == page.locator("#event-rows tr.event-row").count()
    assert browser_page.console_errors == []


# --- hostile data -------------------------------------------------------------------------


def test_hostile_data_is_shown_as_text(sqlite_server: Any, browser_page: Any) -> None:
    seeded = _seed(sqlite_server, hostile=True)
    page = browser_page.page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        browser_page.goto("/artifacts?status=failed")
        grid = page.locator("#artifact-grid")
        assert HOSTILE_ORG in grid.inner_text()
        assert grid.locator("img, b").count() == 0
        page.locator(f'tr.artifact-row[data-artifact-id="{seeded.failed}"] td').nth(3).click()
        expanded = page.locator(f'tr.expand-row[data-for="{seeded.failed}"]')
        expanded.locator(".timeline").wait_for()
        assert HOSTILE_ERROR in expanded.inner_text()

        browser_page.goto(f"/artifacts/{seeded.failed}")
        assert HOSTILE_ERROR in page.locator("#artifact-error").inner_text()
        assert HOSTILE_ORG in page.locator(".artifact-header").inner_text()
        assert page.locator("main script, main img, main b").count() == 0

        browser_page.goto("/events?errors_only=true")
        row = page.locator('tr[data-event-id="evt-hostile"]')
        assert HOSTILE_ERROR in row.inner_text() and "<b>bold</b>" in row.inner_text()
        assert HOSTILE_ORG in row.inner_text()
        row.locator("td").nth(2).click()
        assert HOSTILE_ERROR in page.locator("#event-dialog-body").inner_text()
        assert page.locator("#event-dialog-body script, main img").count() == 0

        # the organization dropdowns show the name as text too
        option = page.locator('#event-filters option[value="org_evil"]')
        assert option.inner_text() == HOSTILE_ORG
        assert dialogs == []
        assert browser_page.console_errors == []
    finally:
        seeded.ctx.monitor.close()


# --- access -------------------------------------------------------------------------------

PAGES = ["/artifacts", "/artifacts/art_x", "/artifacts/art_x?fragment=row", "/events", "/metrics"]


def test_anonymous_visitors_are_sent_to_login_and_non_staff_refused(sqlite_server: Any) -> None:
    html = {"Accept": "text/html"}
    with httpx.Client(base_url=sqlite_server.url) as client:
        for path in PAGES:
            anonymous = client.get(path, headers=html)
            assert anonymous.status_code == 303, path
            assert anonymous.headers["location"].startswith("/login?next=/"), path
            ingest = client.get(
                path, headers={**html, **sqlite_server.headers(sqlite_server.ingest_token)}
            )
            assert ingest.status_code == 403, path
        staff = sqlite_server.headers()
        for path in ("/artifacts", "/events", "/metrics"):
            assert client.get(path, headers={**html, **staff}).status_code == 200, path
        unknown = client.get("/artifacts/art_nope", headers={**html, **staff})
        assert unknown.status_code == 404 and "No artifact with this id" in unknown.text
        assert "<html" in unknown.text
        bad = client.get("/artifacts?status=nope", headers={**html, **staff})
        assert bad.status_code == 422


def test_an_unknown_artifact_shows_the_404_page(sqlite_server: Any, browser_page: Any) -> None:
    response = browser_page.goto("/artifacts/art_does_not_exist")
    assert response.status == 404
    assert re.search("No artifact with this id", browser_page.page.inner_text("main"))


# --- live -----------------------------------------------------------------------------------


def test_new_matching_events_are_prepended_live(
    sqlite_server: Any, run: Run, browser_page: Any
) -> None:
    page = browser_page.page
    browser_page.goto("/events?event_type=rate_limit_hit&event_type=retry_failed")
    page.wait_for_function("document.getElementById('live-dot').classList.contains('on')")
    page.evaluate("window.__notReloaded = true")
    stamp = now_ms()
    batch = [
        {"event_id": "live-match", "event_type": "rate_limit_hit", "timestamp": stamp,
         "organization_id": "org_clg", "error_message": "<i>slow down</i>"},
        {"event_id": "live-other", "event_type": "transcription_started", "timestamp": stamp},
    ]  # fmt: skip
    posted = httpx.post(
        f"{sqlite_server.url}/api/v1/events", json=batch, headers=sqlite_server.headers()
    )
    assert posted.json()["accepted"] == 2
    row = page.locator('#event-rows tr[data-event-id="live-match"]')
    row.wait_for(timeout=2000)
    assert page.locator("#event-rows tr.event-row").first.get_attribute("data-event-id") == (
        "live-match"
    )
    assert "Clonmore GAA" in row.inner_text() and "<i>slow down</i>" in row.inner_text()
    assert row.locator("i").count() == 0
    page.wait_for_timeout(700)  # the stream polls every 0.5 s: the other event has been sent
    assert page.locator('tr[data-event-id="live-other"]').count() == 0
    assert page.evaluate("window.__notReloaded") is True
    row.locator("td").nth(2).click()
    assert '"live-match"' in page.locator("#event-dialog-body").inner_text()
    assert browser_page.console_errors == []
