"""The coach loop's snapshot figures equal a story worked out by hand (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from voicewatch.clock import DAY_MS, HOUR_MS, MINUTE_MS
from voicewatch.metrics import aggregate_day, aggregate_hour
from voicewatch.metrics.decisions import decision_totals, decision_values
from voicewatch.metrics.snapshots import public_snapshot, read_snapshots
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import coach_decisions, voice_note_entity_resolutions

DAY = 1_796_083_200_000  # a midnight UTC
HOUR = DAY + 9 * HOUR_MS


def _decision(org: str, action: str, waited: int | None, at: int = HOUR + MINUTE_MS) -> dict:
    return {
        "subject": "name" if action in ("user_resolved", "unresolved") else "draft",
        "subject_id": f"{org}.{action}.{waited}.{at}",
        "artifact_id": "art_1",
        "organization_id": org,
        "coach_user_id": f"coach_{org}",
        "decided_by": "system" if action in ("auto_applied", "expired") else f"coach_{org}",
        "action": action,
        "waited_ms": waited,
        "at_ms": at,
    }


def _alias_resolution(number: int, created_at: int) -> dict:
    return {
        "resolution_id": f"r{number}",
        "claim_id": f"c{number}",
        "artifact_id": "art_1",
        "organization_id": "org_a",
        "raw_text": "sean",
        "status": "auto_resolved",
        "resolved_by": "alias",
        "created_at": created_at,
        "updated_at": created_at,
    }


@pytest.fixture
def story(engine: Engine) -> Engine:
    rows = [
        *(_decision("org_a", "confirmed", w) for w in (60_000, 120_000, 300_000)),
        _decision("org_a", "rejected", 600_000),
        _decision("org_a", "auto_applied", 0),
        _decision("org_a", "auto_applied", 0),
        _decision("org_a", "undone", 5 * MINUTE_MS),
        _decision("org_a", "expired", 7 * DAY_MS),
        _decision("org_a", "user_resolved", 90_000),
        _decision("org_a", "user_resolved", 30_000),
        _decision("org_a", "unresolved", 10_000),
        _decision("org_b", "confirmed", 30_000),
        _decision("org_b", "rejected", 5, at=HOUR + HOUR_MS),  # the next hour: not in this one
    ]
    with write_transaction(engine) as conn:
        conn.execute(coach_decisions.insert(), rows)
        conn.execute(
            voice_note_entity_resolutions.insert(),
            [
                _alias_resolution(1, HOUR + 2 * MINUTE_MS),
                _alias_resolution(2, HOUR + 3 * MINUTE_MS),
                _alias_resolution(3, HOUR - 1),  # the hour before
            ],
        )
    return engine


def test_the_hour_by_hand(story: Engine) -> None:
    aggregate_hour(story, HOUR, now_ms=HOUR + 2 * HOUR_MS)
    with read_connection(story) as conn:
        (row,) = read_snapshots(conn, "hourly", start_from=HOUR, start_before=HOUR + 1)
    snap = public_snapshot(row)
    # platform: confirmed 3 + 1 = 4, rejected 1, so 4 / 5 and 1 / 5
    assert snap["confirmation_rate"] == pytest.approx(4 / 5)
    assert snap["rejection_rate"] == pytest.approx(1 / 5)
    # waits of the confirms and rejects: 30, 60, 120, 300, 600 s -> the middle one
    assert snap["median_time_to_decision_ms"] == 120_000
    # p95: sorted[floor(5 * 0.95)] = sorted[4]
    assert snap["p95_time_to_decision_ms"] == 600_000
    # auto-applied 2 of 2 + 5 decided drafts; 1 of the 2 undone
    assert snap["auto_applied_share"] == pytest.approx(2 / 7)
    assert snap["undo_rate"] == pytest.approx(1 / 2)
    assert snap["drafts_expired"] == 1
    assert snap["resolved_by_person"] == 2 + 1
    assert snap["resolved_by_alias"] == 2


def test_each_organization_by_hand(story: Engine) -> None:
    with read_connection(story) as conn:
        totals = decision_totals(conn, HOUR, HOUR + HOUR_MS)
    org_a, org_b = decision_values(totals["org_a"]), decision_values(totals["org_b"])
    assert org_a["confirmation_rate"] == pytest.approx(3 / 4)
    # 60, 120, 300, 600 s: the mean of the two middle ones
    assert org_a["median_time_to_decision_ms"] == (120_000 + 300_000) / 2
    assert org_a["p95_time_to_decision_ms"] == 600_000  # sorted[floor(4 * 0.95)] = sorted[3]
    assert org_a["auto_applied_share"] == pytest.approx(2 / 6)
    assert org_a["resolved_by_alias"] == 2
    assert (org_b["confirmation_rate"], org_b["median_time_to_decision_ms"]) == (1.0, 30_000)
    assert (org_b["undo_rate"], org_b["drafts_expired"], org_b["resolved_by_alias"]) == (0, 0, 0)


def test_the_day_counts_both_hours(story: Engine) -> None:
    aggregate_day(story, DAY, now_ms=DAY + 2 * DAY_MS)
    with read_connection(story) as conn:
        (row,) = read_snapshots(conn, "daily", start_from=DAY, start_before=DAY + 1)
    snap = public_snapshot(row)
    # the next hour's rejection joins: confirmed 4, rejected 2
    assert snap["confirmation_rate"] == pytest.approx(4 / 6)
    # waits 0.005, 30, 60, 120, 300, 600 s: the mean of 60 and 120 s
    assert snap["median_time_to_decision_ms"] == 90_000
    assert snap["resolved_by_alias"] == 3  # the alias of the hour before is in the day too


def test_the_metrics_page_shows_them(sqlite_url: str) -> None:
    import httpx

    from conftest import LiveServer
    from voicewatch.clock import now_ms

    server = LiveServer(sqlite_url)
    try:
        at = now_ms() - HOUR_MS
        with write_transaction(server.engine) as conn:
            conn.execute(
                coach_decisions.insert(),
                [
                    _decision("org_a", "confirmed", 60_000, at),
                    _decision("org_a", "confirmed", 180_000, at),
                    _decision("org_a", "rejected", 120_000, at),
                    _decision("org_a", "expired", DAY_MS, at),
                ],
            )
        import re

        from conftest import STAFF_EMAIL, STAFF_PASSWORD
        from voicewatch.auth import create_staff

        create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
        with httpx.Client(base_url=server.url, timeout=20) as client:  # a session: the page
            login = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', login)
            assert token is not None
            form = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token[1]}
            assert client.post("/login", data=form).status_code == 303
            page = client.get("/metrics?range=24h")
        assert page.status_code == 200
        text = page.text
        assert "4 decisions" in text
        assert 'data-card="confirmation_rate">66.7%' in text  # 2 of 3
        assert 'data-card="median_time_to_decision">2.0 min' in text  # 60, 120, 180 s
        assert 'data-card="drafts_expired">1<' in text
    finally:
        server.stop()


def test_auto_applied_drafts_in_the_events_and_the_figures(db_url: str) -> None:
    """Through the real pipeline: auto-applied drafts are ``draft_confirmed`` events, yet
    the confirmation rate counts a person's confirms only, and the auto-applied share
    counts them apart (the definitions of ``metrics.decisions``)."""
    from pipeline_helpers import make_pipeline
    from voicewatch import event_queries
    from voicewatch.clock import now_ms
    from voicewatch.pipeline import repository as repo
    from voicewatch.pipeline.autoapply import set_threshold, undo_auto_apply
    from voicewatch.pipeline.decisions import Actor, confirm_draft, reject_draft
    from voicewatch.pipeline.intake import submit_note

    ctx, driver = make_pipeline(db_url)
    try:
        start = now_ms()
        with write_transaction(ctx.engine) as conn:
            set_threshold(conn, "coach_1", "org_clg", 0.05, start)  # coach_2 has none
        note = "Aoife Kelly was brilliant on the frees. Jack Walsh was tired."
        ids = [
            submit_note(ctx, organization_id="org_clg", coach_user_id=c, text=note)["artifact_id"]
            for c in ("coach_1", "coach_2")
        ]
        driver.drain()
        auto_a, auto_b = repo.drafts_of(ctx.engine, ids[0])  # both applied without asking
        mine, theirs = repo.drafts_of(ctx.engine, ids[1])
        coach_1, coach_2 = Actor.coach("coach_1"), Actor.coach("coach_2")
        confirm_draft(ctx, mine["draft_id"], coach_2)
        reject_draft(ctx, theirs["draft_id"], coach_2, reason="Not accurate")
        undo_auto_apply(ctx, auto_a["draft_id"], coach_1, window_ms=HOUR_MS)
        confirm_draft(ctx, auto_a["draft_id"], coach_1)  # back to pending, then a person
        ctx.monitor.flush(timeout=10)
        end = now_ms() + 1
        told = [
            (e["event_type"], e["new_status"])
            for artifact_id in ids
            for e in event_queries.artifact_timeline(ctx.engine, artifact_id)
            if e["pipeline_stage"] == "confirmation"
        ]
        with read_connection(ctx.engine) as conn:
            figures = decision_values(decision_totals(conn, start, end)["org_clg"])
    finally:
        ctx.monitor.close()
    assert sorted(told) == sorted(
        [
            ("draft_confirmed", "auto_applied"),  # auto_a
            ("draft_confirmed", "auto_applied"),  # auto_b
            ("draft_confirmed", "applied"),  # auto_a again, by coach_1 after the undo
            ("draft_confirmed", "applied"),  # mine, by coach_2
            ("draft_rejected", "rejected"),  # theirs
        ]
    )
    assert auto_b["status"] == "applied"
    # a person: confirmed 2 (auto_a after its undo, mine), rejected 1 -> 2 / 3 and 1 / 3
    assert figures["confirmation_rate"] == pytest.approx(2 / 3)
    assert figures["rejection_rate"] == pytest.approx(1 / 3)
    # auto-applied 2, decided by a person 3: 2 / (2 + 3); one of the two undone: 1 / 2
    assert figures["auto_applied_share"] == pytest.approx(2 / 5)
    assert figures["undo_rate"] == pytest.approx(1 / 2)
