"""Auto-apply and undo, draft expiry and the daily calibration, as periodic jobs.

Time is a parameter everywhere (``now``): no sleeping. "Several workers" are
two calls for the same slot: ``job_runs`` lets one of them do the work.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from pipeline_helpers import make_pipeline
from voicewatch.clock import DAY_MS, HOUR_MS, MINUTE_MS, now_ms
from voicewatch.coaching.calibration import band_of, threshold_from
from voicewatch.coaching.jobs import calibration_job, calibration_key, expire_drafts_job
from voicewatch.config import Settings
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.autoapply import set_threshold, undo_auto_apply
from voicewatch.pipeline.decisions import Actor, Conflict, NotFound, confirm_draft
from voicewatch.pipeline.intake import submit_note
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import (
    coach_decisions,
    coach_threshold_changes,
    coach_thresholds,
    insight_drafts,
    voice_note_insights,
)

NOTE = "Aoife Kelly was brilliant on the frees. Jack Walsh was tired."
COACH = Actor.coach("coach_1")
WINDOW = 60 * MINUTE_MS
SETTINGS = Settings(draft_expiry_days=7, auto_apply_floor=0.8)


@pytest.fixture
def pipeline(db_url: str) -> Any:
    ctx, driver = make_pipeline(db_url)
    yield ctx, driver
    ctx.monitor.close()


def _note(pipeline: Any, coach: str = "coach_1") -> list[dict[str, Any]]:
    ctx, driver = pipeline
    artifact = submit_note(ctx, organization_id="org_clg", coach_user_id=coach, text=NOTE)
    driver.drain()
    return repo.drafts_of(ctx.engine, artifact["artifact_id"])


def _rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with read_connection(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def test_above_the_threshold_applied_at_once_with_an_audit_row(pipeline: Any) -> None:
    ctx, _driver = pipeline
    with write_transaction(ctx.engine) as conn:
        set_threshold(conn, "coach_1", "org_clg", 0.05, now_ms())
    drafts = _note(pipeline)
    assert {d["status"] for d in drafts} == {"applied"}
    insights = _rows(ctx.engine, voice_note_insights)
    assert len(insights) == len(drafts) and all(i["auto_applied"] for i in insights)
    audit = _rows(ctx.engine, coach_decisions)
    assert [(a["action"], a["decided_by"]) for a in audit] == [("auto_applied", "system")] * len(
        drafts
    )
    assert {d["status"] for d in _note(pipeline, coach="coach_2")} == {"pending"}  # no threshold


def test_an_auto_applied_draft_is_told_as_a_confirmation(pipeline: Any) -> None:
    """Each auto-applied draft is a ``draft_confirmed`` (stage confirmation, new status
    ``auto_applied``, the draft's confidence) after the note's ``drafts_generated``."""
    from voicewatch import event_queries

    ctx, _driver = pipeline
    with write_transaction(ctx.engine) as conn:
        set_threshold(conn, "coach_1", "org_clg", 0.05, now_ms())
    drafts = _note(pipeline)
    ctx.monitor.flush(timeout=10)
    timeline = event_queries.artifact_timeline(ctx.engine, drafts[0]["artifact_id"])
    types = [e["event_type"] for e in timeline]
    confirmed = [e for e in timeline if e["event_type"] == "draft_confirmed"]
    assert len(confirmed) == len(drafts) == 2
    assert types.index("drafts_generated") < types.index("draft_confirmed")
    assert types[-2:] == ["draft_confirmed", "draft_confirmed"]  # after artifact_completed
    by_confidence = sorted(d["ai_confidence"] for d in drafts)
    assert sorted(e["metadata"]["confidence_score"] for e in confirmed) == pytest.approx(
        by_confidence
    )
    for event in confirmed:
        assert event["pipeline_stage"] == "confirmation"
        assert (event["previous_status"], event["new_status"]) == ("pending", "auto_applied")
        assert event["coach_user_id"] == "coach_1" and event["duration_ms"] >= 0


def test_a_draft_below_the_threshold_waits(pipeline: Any) -> None:
    ctx, _driver = pipeline
    with write_transaction(ctx.engine) as conn:
        set_threshold(conn, "coach_1", "org_clg", 0.99, now_ms())
    assert {d["status"] for d in _note(pipeline)} == {"pending"}
    assert _rows(ctx.engine, voice_note_insights) == []


def test_undo_inside_the_window_then_refused_after(pipeline: Any) -> None:
    ctx, _driver = pipeline
    with write_transaction(ctx.engine) as conn:
        set_threshold(conn, "coach_1", "org_clg", 0.05, now_ms())
    first, second = _note(pipeline)
    applied_at = _rows(ctx.engine, voice_note_insights)[0]["applied_at"]
    with pytest.raises(NotFound):  # another coach's draft: as if absent
        undo_auto_apply(ctx, first["draft_id"], Actor.coach("coach_2"), window_ms=WINDOW)
    done = undo_auto_apply(ctx, first["draft_id"], COACH, window_ms=WINDOW, now=applied_at + WINDOW)
    assert done["status"] == "pending"
    assert repo.drafts_of(ctx.engine, first["artifact_id"])[0]["status"] == "pending"
    undone = [i for i in _rows(ctx.engine, voice_note_insights) if i["undone_at"]]
    assert [(i["draft_id"], i["undone_by"]) for i in undone] == [(first["draft_id"], "coach_1")]
    with pytest.raises(Conflict, match="nothing to undo"):
        undo_auto_apply(ctx, first["draft_id"], COACH, window_ms=WINDOW)
    insight = confirm_draft(ctx, first["draft_id"], COACH, now=applied_at + WINDOW + 1)
    assert insight["insight_id"] == f"{first['draft_id']}.i2" and not insight["auto_applied"]
    with pytest.raises(Conflict, match="closed at"):
        undo_auto_apply(
            ctx, second["draft_id"], COACH, window_ms=WINDOW, now=applied_at + WINDOW + 1
        )
    actions = [a["action"] for a in _rows(ctx.engine, coach_decisions)]
    assert actions == ["auto_applied", "auto_applied", "undone", "confirmed"]


def _age(engine: Engine, draft_ids: list[str], created_at: int) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            update(insight_drafts)
            .where(insight_drafts.c.draft_id.in_(draft_ids))
            .values(created_at=created_at)
        )


def test_expiry_once_per_slot_idempotent_and_caught_up(pipeline: Any) -> None:
    ctx, _driver = pipeline
    now = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS + 5 * MINUTE_MS
    old, young = _note(pipeline), _note(pipeline)
    _age(ctx.engine, [d["draft_id"] for d in old], now - 7 * DAY_MS)  # exactly the window
    _age(ctx.engine, [d["draft_id"] for d in young], now - 7 * DAY_MS + HOUR_MS)
    assert expire_drafts_job(ctx.engine, SETTINGS, now) == 2
    assert expire_drafts_job(ctx.engine, SETTINGS, now) is None  # another worker, same slot
    assert expire_drafts_job(ctx.engine, SETTINGS, now + 50 * MINUTE_MS) is None
    # the next three slots were missed; the run after them catches up (and only once)
    assert expire_drafts_job(ctx.engine, SETTINGS, now + 4 * HOUR_MS) == 2
    assert expire_drafts_job(ctx.engine, SETTINGS, now + 5 * HOUR_MS) == 0
    statuses = {d["status"] for d in repo.drafts_of(ctx.engine, old[0]["artifact_id"])}
    assert statuses == {"expired"}
    with pytest.raises(Conflict, match="expired: it can no longer be decided"):
        confirm_draft(ctx, old[0]["draft_id"], COACH)
    expired = [a for a in _rows(ctx.engine, coach_decisions) if a["action"] == "expired"]
    assert len(expired) == 4 and {a["decided_by"] for a in expired} == {"system"}
    assert {a["waited_ms"] for a in expired if a["subject_id"] == old[0]["draft_id"]} == {
        7 * DAY_MS
    }


@pytest.mark.parametrize(
    ("confidence", "band"), [(0.87, 0.85), (0.85, 0.85), (0.9, 0.9), (0.999, 0.95), (0.3, 0.3)]
)
def test_bands(confidence: float, band: float) -> None:
    assert band_of(confidence) == band


def test_threshold_from_the_bands() -> None:
    # 0.95: 10/10, 0.90: 19/20 = 95 %, 0.85: 3/3 (too few: skipped), 0.80: 8/10 = 80 %
    bands = {0.95: (10, 10), 0.9: (19, 20), 0.85: (3, 3), 0.8: (8, 10)}
    assert threshold_from(bands, 0.8) == 0.9
    assert threshold_from({0.7: (20, 20)}, 0.8) == 0.8  # never below the floor
    assert threshold_from({0.95: (4, 5)}, 0.8) == 1.0  # 80 %: no auto-apply
    assert threshold_from({}, 0.8) == 1.0


def _decide(engine: Engine, coach: str, at: int, rows: list[tuple[float, str]]) -> None:
    with write_transaction(engine) as conn:
        for number, (confidence, action) in enumerate(rows):
            conn.execute(
                coach_decisions.insert().values(
                    subject="draft",
                    subject_id=f"{coach}.d{number}.{at}",
                    artifact_id="art_x",
                    organization_id="org_clg",
                    coach_user_id=coach,
                    decided_by=coach,
                    action=action,
                    ai_confidence=confidence,
                    at_ms=at,
                )
            )


def test_calibration_daily_once_idempotent_caught_up_and_recorded(engine: Engine) -> None:
    day = 1_796_083_200_000  # a midnight UTC
    assert calibration_key(day + 2 * HOUR_MS - 1) != calibration_key(day + 2 * HOUR_MS)
    _decide(engine, "coach_1", day - DAY_MS, [(0.92, "confirmed")] * 19 + [(0.91, "rejected")])
    _decide(engine, "coach_1", day - DAY_MS, [(0.82, "confirmed")] * 5 + [(0.83, "rejected")] * 5)
    _decide(engine, "coach_2", day - DAY_MS, [(0.96, "rejected")] * 6)
    _decide(engine, "coach_1", day - 31 * DAY_MS, [(0.82, "confirmed")] * 50)  # outside 30 days
    # the 02:00 run was missed; the 05:00 hourly run does the day's calibration, once
    (change,) = calibration_job(engine, SETTINGS, day + 5 * HOUR_MS)
    assert calibration_job(engine, SETTINGS, day + 6 * HOUR_MS) is None
    assert (change["coach_user_id"], change["previous"], change["threshold"]) == (
        "coach_1",
        None,
        0.9,
    )
    assert change["figures"]["bands"] == {
        "0.80": {"confirmed": 5, "decided": 10},
        "0.90": {"confirmed": 19, "decided": 20},
    }
    thresholds = {r["coach_user_id"]: r["threshold"] for r in _rows(engine, coach_thresholds)}
    assert thresholds == {"coach_1": 0.9}  # coach_2 was never auto-applied and still is not
    # the next day: five more rejections at 0.92 drop the 0.90 band to 19/25 = 76 %
    _decide(engine, "coach_1", day + 10 * HOUR_MS, [(0.92, "rejected")] * 5)
    (later,) = calibration_job(engine, SETTINGS, day + DAY_MS + 2 * HOUR_MS)
    assert (later["previous"], later["threshold"]) == (0.9, 1.0)
    assert calibration_job(engine, SETTINGS, day + 2 * DAY_MS + 2 * HOUR_MS) == []  # no change
    stored = _rows(engine, coach_threshold_changes)
    assert [(r["run_key"], r["threshold"]) for r in stored] == [
        (calibration_key(day + 5 * HOUR_MS), 0.9),
        (calibration_key(day + DAY_MS + 2 * HOUR_MS), 1.0),
    ]
    assert json.loads(stored[1]["figures"])["bands"]["0.90"] == {"confirmed": 19, "decided": 25}


def test_the_coach_jobs_are_periodic_tasks_fired_every_hour() -> None:
    from datetime import datetime

    from voicewatch import tasks

    def fires(task: object, iso: str) -> bool:
        return bool(task.task_class().validate_datetime(datetime.fromisoformat(iso)))  # type: ignore[attr-defined]

    assert fires(tasks.expire_drafts_task, "2026-11-23T14:05:00")
    assert not fires(tasks.expire_drafts_task, "2026-11-23T14:00:00")
    assert fires(tasks.calibrate_thresholds_task, "2026-11-23T02:00:00")
    assert fires(tasks.calibrate_thresholds_task, "2026-11-23T03:00:00")  # catch-up runs
    assert not fires(tasks.calibrate_thresholds_task, "2026-11-23T02:05:00")


def test_workers_racing_for_one_slot_do_it_once(pipeline: Any, db_url: str) -> None:
    """Four workers, each with its own engine, start the same slot of both jobs at once:
    one does the work, the others find the slot claimed; nothing is done twice."""
    import threading

    from voicewatch.store import make_engine

    ctx, _driver = pipeline
    day = 1_796_083_200_000
    now = day + 2 * HOUR_MS + 5 * MINUTE_MS
    drafts = _note(pipeline)
    _age(ctx.engine, [d["draft_id"] for d in drafts], now - 8 * DAY_MS)
    _decide(ctx.engine, "coach_1", now - DAY_MS, [(0.92, "confirmed")] * 10)
    engines = [make_engine(db_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    results: dict[str, list[Any]] = {"expire": [], "calibrate": []}

    def work(engine: Engine) -> None:
        start.wait()
        results["expire"].append(expire_drafts_job(engine, SETTINGS, now))
        results["calibrate"].append(calibration_job(engine, SETTINGS, now))

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert sorted(results["expire"], key=str) == [2, None, None, None]
    done = [r for r in results["calibrate"] if r is not None]
    assert results["calibrate"].count(None) == 3 and len(done[0]) == 1
    assert done[0][0]["threshold"] == 0.9
    expired = [a for a in _rows(ctx.engine, coach_decisions) if a["action"] == "expired"]
    assert len(expired) == 2
    assert len(_rows(ctx.engine, coach_threshold_changes)) == 1
