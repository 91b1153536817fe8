"""The demo's coaches answer their inbox, after realistic delays, so every page shows the loop.

Only the demo coaches (``simulate_notes.DEMO_COACH_NAMES``) are simulated; a real
coach's items are never touched. Each item's delay and outcome come from a hash
of its id, so a run is reproducible and a second run decides nothing twice:

- a draft waits 2 minutes to 3 hours; then 78% are confirmed, 14% rejected (with
  a reason), and 8% never answered (the expiry job expires them);
- a waiting name waits 1 minute to 2 hours; then it is resolved to its best
  candidate (or "not a player" when none), except 5% that are never answered.
"""

from __future__ import annotations

import hashlib
from typing import Any

from voicewatch.clock import HOUR_MS, MINUTE_MS, now_ms
from voicewatch.coaching.inbox import pending_drafts, waiting_names
from voicewatch.pipeline.decisions import Actor, DecisionError, confirm_draft, reject_draft
from voicewatch.pipeline.disambiguation import resolve_waiting_name

REASONS = ("Not accurate", "Already recorded", "Wrong player", "Not worth keeping")


def _fraction(item_id: str, salt: str) -> float:
    """A stable number in [0, 1) for an item (the same on every run and machine)."""
    digest = hashlib.sha256(f"{salt}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _due(item_id: str, created_at: int, now: int, low: int, high: int) -> bool:
    return now - created_at >= low + _fraction(item_id, "delay") * (high - low)


def decide_as_demo_coaches(ctx: Any, now: int | None = None) -> dict[str, int]:
    """Decide the demo coaches' items that are due; returns counts by outcome."""
    from voicewatch.simulate_notes import DEMO_COACH_NAMES

    now = now_ms() if now is None else now
    counts = {"confirmed": 0, "rejected": 0, "resolved": 0, "unresolved": 0}
    for name in waiting_names(ctx.engine, None, limit=500):
        rid, coach = name["resolution_id"], name["coach_user_id"]
        if coach not in DEMO_COACH_NAMES or _fraction(rid, "never") < 0.05:
            continue
        if not _due(rid, name["created_at"], now, MINUTE_MS, 2 * HOUR_MS):
            continue
        best = name["candidates"][0]["entity_id"] if name["candidates"] else None
        try:
            resolve_waiting_name(ctx, rid, Actor.coach(coach), entity_id=best, now=now)
        except DecisionError:
            continue  # decided meanwhile by someone else: fine
        counts["resolved" if best else "unresolved"] += 1
    for draft in pending_drafts(ctx.engine, None, limit=500):
        did, coach = draft["draft_id"], draft["coach_user_id"]
        if coach not in DEMO_COACH_NAMES:
            continue
        if not _due(did, draft["created_at"], now, 2 * MINUTE_MS, 3 * HOUR_MS):
            continue
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
    return counts
