"""The ``/metrics`` page: cards, chart series and the per-organization table of a range.

Every figure comes from ``voicewatch.metrics``: the snapshot history and its
summary, the disambiguation backlog, the organization breakdown, and the
confidence histogram (a bounded sample of the event log, the one figure the
snapshots do not keep). Times are UTC epoch ms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from voicewatch import metrics
from voicewatch.clock import now_ms
from voicewatch.dashboard.filters import BadFilter

METRIC_RANGES = ("1h", "6h", "24h", "7d", "30d")
#: The processing stages whose average latency the stacked chart shows, in pipeline order.
LATENCY_STAGES = ("transcription", "claims_extraction", "entity_resolution", "draft_generation")


def metrics_page(engine: Engine, range_name: str, *, now: int | None = None) -> dict[str, Any]:
    """Cards, chart series and the per-organization table for the last ``range_name``."""
    if range_name not in METRIC_RANGES:
        raise BadFilter(f"range must be one of {', '.join(METRIC_RANGES)}")
    now = now_ms() if now is None else now
    hist = metrics.history(engine, range_name, now=now)
    summary = hist["summary"]
    snaps = hist["snapshots"]
    received = summary["artifacts_received"]
    cards = {
        "received": received,
        "completed": summary["artifacts_completed"],
        "failed": summary["artifacts_failed"],
        "completion_rate": summary["artifacts_completed"] / received if received else None,
        "avg_e2e_ms": summary["avg_end_to_end_latency"] if summary["artifacts_completed"] else None,
        "p95_e2e_ms": summary["p95_end_to_end_latency"] if summary["artifacts_completed"] else None,
        "total_ai_cost": summary["total_ai_cost"],
        "auto_resolution_rate": summary["auto_resolution_rate"]
        if summary["total_entities_resolved"] or summary["auto_resolution_rate"]
        else None,
        "disambiguation_backlog": metrics.disambiguation_backlog(engine),
    }
    charts = {
        "period_type": hist["period_type"],
        "period_seconds": 3600 if hist["period_type"] == "hourly" else 86400,
        "x": [s["period_start"] // 1000 for s in snaps],
        "received": [s["artifacts_received"] for s in snaps],
        "completed": [s["artifacts_completed"] for s in snaps],
        "failed": [s["artifacts_failed"] for s in snaps],
        "latency": {stage: [s[f"avg_{stage}_latency"] for s in snaps] for stage in LATENCY_STAGES},
        "failure_rate": [s["overall_failure_rate"] for s in snaps],
        "stage_failure_rate": {
            stage: [s[f"{stage}_failure_rate"] for s in snaps]
            for stage in ("transcription", "claims_extraction", "entity_resolution")
        },
        "cost": [s["total_ai_cost"] for s in snaps],
        "confidence": metrics.confidence_histogram(engine, hist["since"], now),
    }
    return {
        "range": range_name,
        "ranges": METRIC_RANGES,
        "since": hist["since"],
        "until": now,
        "period_type": hist["period_type"],
        "periods": len(snaps),
        "cards": cards,
        "charts": charts,
        "orgs": metrics.org_breakdown(engine, range_name, now=now)["organizations"],
        "coach_loop": _coach_loop(engine, hist["since"], now),
    }


def _coach_loop(engine: Engine, since: int, until: int) -> dict[str, Any]:
    """The coach loop's figures over the range (``metrics.decisions``, one definition each)."""
    from voicewatch.metrics.decisions import range_figures

    return range_figures(engine, since, until)
