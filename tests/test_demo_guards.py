"""``voicewatch demo`` shows every guard-rail event in its first three minutes.

The demo's own traffic step (``demo.traffic_step``: the guard-rail script, then
one note) runs once per simulated second on a test clock, with the pipeline
drained between ticks: three minutes of demo in a few seconds, no sleeping.
"""

from __future__ import annotations

import random

from guard_pipeline import Clock, clocked_pipeline
from voicewatch import events
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
    items, _ = events.recent_events(
        ctx.engine, events.EventFilter(event_types=GUARD_EVENTS), limit=500
    )
    for e in items:
        first_seen[e["event_type"]] = min(first_seen.get(e["event_type"], 10**15), e["timestamp"])
    assert sorted(first_seen) == sorted(GUARD_EVENTS)
    assert all(ts - start < 180_000 for ts in first_seen.values())
    assert first_seen["circuit_breaker_opened"] < first_seen["circuit_breaker_closed"]
    assert first_seen["budget_threshold_reached"] <= first_seen["budget_exceeded"]
    assert script.done == {"budget", "outage", "burst", "lift", "raise"}
    ctx.monitor.close()
