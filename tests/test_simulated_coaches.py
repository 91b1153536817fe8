"""The demo's coaches decide after realistic delays: most confirm, some reject, a few never."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from pipeline_helpers import QueueDriver
from voicewatch.clock import HOUR_MS, MINUTE_MS
from voicewatch.coaching.inbox import pending_drafts, waiting_names
from voicewatch.config import Settings
from voicewatch.pipeline.intake import submit_note
from voicewatch.pipeline.runtime import build_context
from voicewatch.simulate import seed_demo_clubs
from voicewatch.simulate_coaches import decide_as_demo_coaches
from voicewatch.simulate_notes import DEMO_CLUBS, make_note
from voicewatch.store import read_connection
from voicewatch.store.tables import coach_decisions


def test_demo_coaches_decide_when_due_and_only_once(sqlite_url: str) -> None:
    driver = QueueDriver()
    ctx = build_context(Settings(database_url=sqlite_url), enqueue=driver.enqueue)
    driver.ctx = ctx
    seed_demo_clubs(ctx.engine)
    rng = random.Random(12)
    for _ in range(40):
        club = rng.choice(DEMO_CLUBS)
        submit_note(
            ctx,
            organization_id=club.organization_id,
            coach_user_id=rng.choice(club.coaches),
            text=make_note(rng, club),
        )
    submit_note(ctx, organization_id="org_clg", coach_user_id="real_coach", text="Sean was ok.")
    driver.drain()
    start = max(int(d["created_at"]) for d in pending_drafts(ctx.engine, None, limit=500))
    before = len(pending_drafts(ctx.engine, None, limit=500))
    assert decide_as_demo_coaches(ctx, start) == {
        "confirmed": 0,
        "rejected": 0,
        "resolved": 0,
        "unresolved": 0,
    }  # nothing is due at once: the shortest delay is a minute
    first = decide_as_demo_coaches(ctx, start + 4 * HOUR_MS)
    again = decide_as_demo_coaches(ctx, start + 4 * HOUR_MS + MINUTE_MS)
    with read_connection(ctx.engine) as conn:
        rows = conn.execute(select(coach_decisions.c.action, coach_decisions.c.coach_user_id))
        actions: dict[str, int] = {}
        coaches = set()
        for action, coach in rows:
            actions[action] = actions.get(action, 0) + 1
            coaches.add(coach)
    assert "real_coach" not in coaches  # a real coach's items are never touched
    assert first["confirmed"] > first["rejected"] > 0  # most confirm, some reject
    assert actions.get("confirmed", 0) >= first["confirmed"]
    left = [
        d for d in pending_drafts(ctx.engine, None, limit=500) if d["coach_user_id"] != "real_coach"
    ]
    assert 0 < len(left) < before / 4  # a few never answer (the expiry job takes them)
    assert again == dict.fromkeys(first, 0)  # decided once; the new drafts are not due yet
    assert {n["coach_user_id"] for n in waiting_names(ctx.engine, None)} <= {"real_coach"} | {
        c for club in DEMO_CLUBS for c in club.coaches
    }
    ctx.monitor.close()


def test_simulate_then_the_workers_minute_job_answers_once_per_slot(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``voicewatch simulate``'s notes, processed, are answered by the worker's minute job:
    once per minute slot with two workers, most confirmed, some rejected, and the few
    never answered expire. Pages of 3 make the never-answered sit in front of the rest."""
    import voicewatch.simulate_coaches as simulated
    from voicewatch import tasks
    from voicewatch.clock import DAY_MS
    from voicewatch.coaching.expiry import expire_drafts
    from voicewatch.simulate import simulate_notes
    from voicewatch.store.tables import job_runs, voice_note_insights

    monkeypatch.setattr(simulated, "PAGE", 3)
    driver = QueueDriver()
    ctx = build_context(Settings(database_url=db_url), enqueue=driver.enqueue)
    driver.ctx = ctx
    try:
        assert simulated.simulated_coaches_job(ctx, 0) is None  # no demo coaches yet
        with read_connection(ctx.engine) as conn:
            assert conn.execute(select(job_runs)).all() == []  # not even a job_runs row
        simulate_notes(ctx, Settings(database_url=db_url), artifacts=60, rng=random.Random(5))
        driver.drain()
        start = max(int(d["created_at"]) for d in pending_drafts(ctx.engine, None, limit=500))
        drafts_at_first = len(pending_drafts(ctx.engine, None, limit=500))
        at = start + 4 * HOUR_MS
        at -= at % MINUTE_MS  # the start of a minute slot: at + 30 s is the same slot
        first = simulated.simulated_coaches_job(ctx, at)
        assert simulated.simulated_coaches_job(ctx, at + 30_000) is None  # the slot is taken
        later = simulated.simulated_coaches_job(ctx, at + 4 * HOUR_MS)  # drafts of late names
        assert first is not None and later is not None
        expired = expire_drafts(ctx.engine, at + 8 * DAY_MS, days=7)
        with read_connection(ctx.engine) as conn:
            actions: dict[str, int] = {}
            for (action,) in conn.execute(select(coach_decisions.c.action)):
                actions[action] = actions.get(action, 0) + 1
            insights = len(conn.execute(select(voice_note_insights.c.insight_id)).all())
    finally:
        ctx.monitor.close()
    confirmed = first["confirmed"] + later["confirmed"]
    rejected = first["rejected"] + later["rejected"]
    assert actions["confirmed"] == confirmed == insights  # each confirm applied once
    assert actions["rejected"] == rejected
    assert confirmed > 3 * rejected > 0  # most confirm (78%), some reject (14%)
    assert actions.get("expired", 0) == expired
    # the never answered (8%) expire: a few, far fewer than the rejects and confirms
    assert 0 < expired < rejected + confirmed
    assert expired < drafts_at_first / 4
    assert pending_drafts(ctx.engine, None, limit=500) == []  # none left waiting
    task = tasks.simulated_coaches_task.task_class()  # type: ignore[attr-defined]
    assert task.validate_datetime(datetime(2026, 12, 2, 4, 17))  # every minute


def test_demo_coaches_are_only_the_demo_clubs_coaches(engine: Any) -> None:
    from voicewatch.coaching.people import add_coach
    from voicewatch.pipeline import clubs
    from voicewatch.simulate_coaches import demo_coaches

    assert demo_coaches(engine) == []
    clubs.upsert_organization(engine, "org_real", "A real club")
    add_coach(engine, "coach_clg_1", "org_real", "Not the demo's")  # a demo id, a real club
    assert demo_coaches(engine) == []
    seed_demo_clubs(engine)
    assert len(demo_coaches(engine)) == 12


def test_the_periodic_task_runs_the_job_with_the_workers_context(sqlite_url: str) -> None:
    """The Huey task itself, as a worker runs it: the installed context, the real clock.
    The notes are made 5 hours old first, so everything is due now."""
    from sqlalchemy import update

    from voicewatch import tasks
    from voicewatch.pipeline import runtime
    from voicewatch.simulate import simulate_notes
    from voicewatch.store import write_transaction
    from voicewatch.store.tables import insight_drafts, voice_note_entity_resolutions

    driver = QueueDriver()
    ctx = build_context(Settings(database_url=sqlite_url), enqueue=driver.enqueue)
    driver.ctx = ctx
    try:
        simulate_notes(ctx, Settings(database_url=sqlite_url), artifacts=20, rng=random.Random(9))
        driver.drain()
        with write_transaction(ctx.engine) as conn:
            for table in (insight_drafts, voice_note_entity_resolutions):
                conn.execute(update(table).values(created_at=table.c.created_at - 5 * HOUR_MS))
        pending = len(pending_drafts(ctx.engine, None, limit=500))
        runtime.install(ctx)
        tasks.simulated_coaches_task.call_local()  # type: ignore[attr-defined]
        with read_connection(ctx.engine) as conn:
            decided = conn.execute(select(coach_decisions.c.action)).all()
    finally:
        runtime.install(None)
        ctx.monitor.close()
    drafts_decided = [a for (a,) in decided if a in ("confirmed", "rejected")]
    assert pending > 0 and len(drafts_decided) > pending / 2
