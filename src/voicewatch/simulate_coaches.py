"""The demo clubs' coaches answer their inbox after realistic delays, so every page shows the loop.

``voicewatch simulate`` and ``voicewatch demo`` send notes as the demo clubs' coaches;
the worker's periodic job (``simulated_coaches_job``, every minute, once per minute
however many workers run) then has those coaches decide what is due. Only the demo
coaches (``simulate_notes.DEMO_COACH_NAMES``, in their demo club) are simulated; a
real coach's items are never touched, and a store without the demo coaches costs
one query a minute. Each item's delay and outcome come from a hash of its id, so a
run is reproducible and a second run decides nothing twice:

- a draft waits 2 minutes to 3 hours; then 78% are confirmed, 14% rejected (with
  a reason), and 8% never answered (the expiry job expires them);
- a waiting name waits 1 minute to 2 hours; then it is resolved to its best
  candidate (or "not a player" when none), except 5% that are never answered.

Items whose time came while no worker ran are caught up for :data:`CATCH_UP_MS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, select

from voicewatch.clock import HOUR_MS, MINUTE_MS, now_ms, to_datetime
from voicewatch.coaching.inbox import Created, pending_drafts, waiting_names
from voicewatch.pipeline.decisions import Actor, DecisionError, confirm_draft, reject_draft
from voicewatch.pipeline.disambiguation import resolve_waiting_name
from voicewatch.store import read_connection
from voicewatch.store.tables import users

REASONS = ("Not accurate", "Already recorded", "Wrong player", "Not worth keeping")
#: (shortest, longest) wait before a coach answers, in ms.
NAME_DELAY = (MINUTE_MS, 2 * HOUR_MS)
DRAFT_DELAY = (2 * MINUTE_MS, 3 * HOUR_MS)
#: How long after its time an item is still answered (a worker that was away).
CATCH_UP_MS = 3 * HOUR_MS
PAGE = 500


def _fraction(item_id: str, salt: str) -> float:
    """A stable number in [0, 1) for an item (the same on every run and machine)."""
    digest = hashlib.sha256(f"{salt}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _due(item_id: str, created_at: int, now: int, delay: tuple[int, int]) -> bool:
    low, high = delay
    return now - created_at >= low + _fraction(item_id, "delay") * (high - low)


def demo_coaches(engine: Engine) -> list[str]:
    """The demo coaches this store has, each in its demo club (one query)."""
    from voicewatch.simulate_notes import DEMO_COACH_NAMES

    query = select(users.c.user_id, users.c.organization_id).where(
        users.c.user_id.in_(sorted(DEMO_COACH_NAMES)), users.c.role == "coach"
    )
    with read_connection(engine) as conn:
        rows = conn.execute(query).all()
    return sorted(u for u, org in rows if org == f"org_{u.split('_')[1]}")


def _items(
    fetch: Callable[..., list[dict[str, Any]]],
    engine: Engine,
    coach: str,
    now: int,
    delay: tuple[int, int],
    key: str,
) -> Iterator[dict[str, Any]]:
    """The coach's items old enough to be due, oldest first, a page at a time.

    Pages go on from the last one's creation time, so the items never answered
    (still pending) cannot hold the others back however many there are.
    """
    since, until = now - delay[1] - CATCH_UP_MS, now - delay[0]
    seen: set[str] = set()
    while True:
        page = fetch(engine, coach, limit=PAGE, created=Created(since, until))
        fresh = [row for row in page if row[key] not in seen]
        for row in fresh:
            seen.add(row[key])
            if _due(row[key], int(row["created_at"]), now, delay):
                yield row
        if len(page) < PAGE or not fresh:
            return
        since = int(page[-1]["created_at"])


def _answer_names(ctx: Any, coach: str, now: int, counts: dict[str, int]) -> None:
    for name in _items(waiting_names, ctx.engine, coach, now, NAME_DELAY, "resolution_id"):
        rid = name["resolution_id"]
        if _fraction(rid, "never") < 0.05:
            continue
        best = name["candidates"][0]["entity_id"] if name["candidates"] else None
        try:
            resolve_waiting_name(ctx, rid, Actor.coach(coach), entity_id=best, now=now)
        except DecisionError:
            continue  # decided meanwhile by someone else: fine
        counts["resolved" if best else "unresolved"] += 1


def _answer_drafts(ctx: Any, coach: str, now: int, counts: dict[str, int]) -> None:
    for draft in _items(pending_drafts, ctx.engine, coach, now, DRAFT_DELAY, "draft_id"):
        did = draft["draft_id"]
        outcome = _fraction(did, "outcome")
        try:
            if outcome < 0.78:
                confirm_draft(ctx, did, Actor.coach(coach), now=now)
                counts["confirmed"] += 1
            elif outcome < 0.92:
                reason = REASONS[int(_fraction(did, "reason") * len(REASONS))]
                reject_draft(ctx, did, Actor.coach(coach), reason=reason, now=now)
                counts["rejected"] += 1
        except DecisionError:
            continue


def decide_as_demo_coaches(ctx: Any, now: int | None = None) -> dict[str, int]:
    """Decide the demo coaches' items that are due at ``now``; returns counts by outcome."""
    now = now_ms() if now is None else now
    counts = {"confirmed": 0, "rejected": 0, "resolved": 0, "unresolved": 0}
    for coach in demo_coaches(ctx.engine):
        _answer_names(ctx, coach, now, counts)  # first: a resolved name makes a draft
        _answer_drafts(ctx, coach, now, counts)
    return counts


def simulated_coaches_job(ctx: Any, now: int | None = None) -> dict[str, int] | None:
    """The worker's minute job: once per minute slot, when the store has demo coaches.

    None when it did nothing (no demo coaches, or another worker had the slot).
    """
    from voicewatch.jobs import run_once

    now = now_ms() if now is None else now
    if not demo_coaches(ctx.engine):
        return None  # not a simulation: no job_runs row either
    key = to_datetime(now - now % MINUTE_MS).strftime("%Y-%m-%dT%H:%M")
    result: dict[str, int] | None = run_once(
        ctx.engine, "simulated_coaches", key, lambda: decide_as_demo_coaches(ctx, now)
    )
    return result
