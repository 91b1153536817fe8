"""The demo's coaches decide after realistic delays: most confirm, some reject, a few never."""

from __future__ import annotations

import random

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
