"""``voicewatch demo`` shows every guard-rail event in its first three minutes.

The demo's own traffic step (``demo.traffic_step``: the guard-rail script, then
one note) runs once per simulated second on a test clock, with the pipeline
drained between ticks: three minutes of demo in a few seconds, no sleeping.
"""

from __future__ import annotations

import random

from guard_pipeline import Clock, clocked_pipeline
from voicewatch import event_queries
from voicewatch.clock import day_start
from voicewatch.config import Settings
from voicewatch.demo import traffic_step
from voicewatch.simulate_guards import GuardScript

GUARD_EVENTS = (
    "budget_threshold_reached",
    "budget_exceeded",
    "circuit_breaker_opened",
    "circuit_breaker_closed",
    "rate_limit_hit",
)


def test_the_demo_shows_each_guard_rail_event_within_three_minutes(sqlite_url: str) -> None:
    clock = Clock(day_start(Clock().now) + 3_600_000)
    ctx, driver = clocked_pipeline(sqlite_url, clock)
    settings = Settings(database_url=sqlite_url)
    script, rng, start = GuardScript(), random.Random(13), clock.now
    first_seen: dict[str, int] = {}
    for second in range(180):
        clock.now = start + second * 1000
        traffic_step(ctx, settings, script, clock.now - start, clock.now, rng)
        driver.release_due()
        driver.drain()
    ctx.monitor.flush(timeout=10)
    items, _ = event_queries.recent_events(
        ctx.engine, event_queries.EventFilter(event_types=GUARD_EVENTS), limit=500
    )
    for e in items:
        first_seen[e["event_type"]] = min(first_seen.get(e["event_type"], 10**15), e["timestamp"])
    assert sorted(first_seen) == sorted(GUARD_EVENTS)
    assert all(ts - start < 180_000 for ts in first_seen.values())
    assert first_seen["circuit_breaker_opened"] < first_seen["circuit_breaker_closed"]
    assert first_seen["budget_threshold_reached"] <= first_seen["budget_exceeded"]
    assert script.done == {"budget", "outage", "burst", "lift", "raise"}
    ctx.monitor.close()


def test_the_demo_budget_starts_from_what_the_panel_shows_spent(sqlite_url: str) -> None:
    """The demo's seeded history spent money today: the budget starts above it, in step."""
    from voicewatch.events import log_events
    from voicewatch.metrics import guards
    from voicewatch.pipeline import budgets

    clock = Clock()
    ctx, _driver = clocked_pipeline(sqlite_url, clock)
    from voicewatch.simulate import seed_demo_clubs

    seed_demo_clubs(ctx.engine)
    log_events(
        ctx.engine,
        [
            {
                "event_id": "seeded.1",
                "event_type": "claims_extracted",
                "artifact_id": "art_seeded",
                "organization_id": "org_rvfc",
                "pipeline_stage": "claims_extraction",
                "metadata": {"ai_cost": 0.05, "ai_model": "gpt-4o-mini"},
                "timestamp": clock.now - 1000,
            }
        ],
    )
    script = GuardScript()
    assert script.step(ctx, Settings(database_url=sqlite_url), 0, clock.now, random.Random(1)) == [
        "budget"
    ]
    (panel,) = [
        b for b in guards.budgets(ctx.engine, clock.now) if b["organization_id"] == "org_rvfc"
    ]
    row = budgets.get_budget(ctx.engine, "org_rvfc", clock.now)
    assert panel["state"] == "ok" and panel["spend_usd"] == 0.05
    assert row is not None and row.spend_usd == 0.05 and not row.threshold_notified
    assert round(row.daily_budget_usd - 0.05, 9) == script.budget_usd
    ctx.monitor.close()
