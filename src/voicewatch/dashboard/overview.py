"""The overview page (``/``): the six status cards, the flow graph and the activity feed.

``overview_page`` is the first render, ``overview_live`` what the page
refreshes when the stream says something changed. Every figure comes from
``voicewatch.metrics``: the cards from ``realtime`` over today, the flow
graph's nodes from ``ingestion_figures`` and ``stage_breakdown`` (queue
depth, health, latency, throughput, failure rate: the same numbers as
``/api/v1/metrics/stages`` and ``/metrics``). Times are UTC epoch ms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from voicewatch import alerts, metrics
from voicewatch.clock import DAY_MS, MINUTE_MS, day_start, now_ms
from voicewatch.dashboard.summary import FLOW_STAGES, STAGE_LABELS, feed_event
from voicewatch.metrics import guards
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_pipeline_events as events_t

FEED_SIZE = 20


def _day_figures(engine: Engine, now: int) -> dict[str, Any]:
    """``metrics.realtime`` over [UTC midnight, now) (the current minute included)."""
    until = (now // MINUTE_MS) * MINUTE_MS + MINUTE_MS
    minutes = max(1, (until - day_start(now)) // MINUTE_MS)
    return metrics.realtime(engine, now=now, window_minutes=int(minutes))


def status_cards(engine: Engine, now: int | None = None) -> dict[str, Any]:
    """The overview's six status cards (today = since UTC midnight)."""
    now = now_ms() if now is None else now
    today = _day_figures(engine, now)
    yesterday = _day_figures(engine, now - DAY_MS)  # yesterday up to the same time of day
    completed, before = today["artifacts_completed"], yesterday["artifacts_completed"]
    change = None if before == 0 else (completed - before) / before
    return {
        "active_artifacts": today["active_artifacts"],
        "completed_today": completed,
        "completed_yesterday": before,
        "completed_change": change,
        "failed_today": today["artifacts_failed"],
        "received_today": today["artifacts_received"],
        "failure_rate_today": today["failure_rate"],
        "avg_latency_ms": today["avg_end_to_end_latency_ms"] if completed else None,
        "circuit_breaker_state": today["circuit_breaker_state"],
        "cost_today": today["total_ai_cost"],
        "ai_services": guards.service_states(engine),  # the AI-service card, per service
        "as_of": now,
    }


def flow_graph(engine: Engine, now: int | None = None) -> list[dict[str, Any]]:
    """The stage nodes: queue depth, health, average latency, throughput (24 h); the
    last, confirmation, is the coaches' (pending drafts, median time to decision)."""
    now = now_ms() if now is None else now
    breakdown = {s["stage"]: s for s in metrics.stage_breakdown(engine, now)["stages"]}
    ingestion = metrics.ingestion_figures(engine, now)
    nodes = [{**ingestion, "label": STAGE_LABELS["ingestion"], "avg_latency_ms": None}]
    for stage, label in FLOW_STAGES[1:]:
        s = breakdown.get(stage, {})
        nodes.append(
            {
                "stage": stage,
                "label": label,
                "queue_depth": s.get("queue_depth", 0),
                "avg_latency_ms": s.get("avg_latency_ms") if s.get("completed") else None,
                "throughput_per_hour": s.get("throughput_per_hour", 0.0),
                "failure_rate": s.get("failure_rate", 0.0),
                "health": s.get("health", "green"),
            }
        )
    from voicewatch.metrics.decisions import confirmation_stage  # the coach loop

    nodes.append(confirmation_stage(engine, now))
    return nodes


def recent_feed(engine: Engine, limit: int = FEED_SIZE) -> list[dict[str, Any]]:
    """The newest events (by stored order), newest first."""
    query = select(events_t).order_by(events_t.c.id.desc()).limit(limit)
    with read_connection(engine) as conn:
        return [feed_event(r) for r in conn.execute(query)]


def overview_live(engine: Engine, now: int | None = None) -> dict[str, Any]:
    """What the overview refreshes: the status cards and the flow graph."""
    now = now_ms() if now is None else now
    return {"cards": status_cards(engine, now), "nodes": flow_graph(engine, now)}


def overview_page(engine: Engine, now: int | None = None) -> dict[str, Any]:
    return {
        **overview_live(engine, now),
        "feed": recent_feed(engine),
        "active_alert_count": alerts.count_active(engine),
    }
