"""``GET /metrics`` in Prometheus text format, from the same definitions as the API.

A fresh registry per scrape holds gauges filled from ``metrics.realtime`` and
``metrics.stage_breakdown``: both read counters and snapshots, never a scan of
the event log, so a scrape costs the same however many events are stored.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import Engine

from voicewatch import metrics
from voicewatch.clock import now_ms
from voicewatch.otlp import figures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HEALTH = {"green": 0, "yellow": 1, "red": 2}


def exposition(engine: Engine) -> bytes:
    """The current figures as Prometheus text."""
    registry = CollectorRegistry()
    live = metrics.realtime(engine)

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=registry).set(value)

    gauge(
        "voicewatch_artifacts_received_60m",
        "Artifacts received in the last 60 minutes.",
        live["artifacts_received"],
    )
    gauge(
        "voicewatch_artifacts_completed_60m",
        "Artifacts completed in the last 60 minutes.",
        live["artifacts_completed"],
    )
    gauge(
        "voicewatch_artifacts_failed_60m",
        "Artifacts failed in the last 60 minutes.",
        live["artifacts_failed"],
    )
    gauge("voicewatch_active_artifacts", "Artifacts in flight now.", live["active_artifacts"])
    gauge(
        "voicewatch_failure_rate_60m",
        "Failed / received over the last 60 minutes.",
        live["failure_rate"],
    )
    gauge(
        "voicewatch_end_to_end_latency_ms_60m",
        "Average end-to-end latency (ms) of artifacts completed in the last 60 minutes.",
        live["avg_end_to_end_latency_ms"],
    )
    gauge(
        "voicewatch_ai_cost_usd_60m", "AI cost (USD) in the last 60 minutes.", live["total_ai_cost"]
    )
    gauge(
        "voicewatch_circuit_open",
        "1 when an AI service circuit is open, 0.5 half-open, 0 closed.",
        {"open": 1.0, "half_open": 0.5}.get(live["circuit_breaker_state"], 0.0),
    )
    gauge(
        "voicewatch_otlp_unmapped_spans_60m",
        "OTLP spans accepted in the last 60 minutes that mapped to no event or AI call.",
        figures.unmapped_since(engine, now_ms() - 3_600_000),
    )
    _per_stage(engine, registry)
    return generate_latest(registry)


def _per_stage(engine: Engine, registry: CollectorRegistry) -> None:
    """The stage breakdown's figures, one labelled gauge per figure."""
    stages = metrics.stage_breakdown(engine)["stages"]
    per_stage = {
        "queue_depth": Gauge(
            "voicewatch_stage_queue_depth", "Artifacts at the stage.", ["stage"], registry=registry
        ),
        "avg_latency_ms": Gauge(
            "voicewatch_stage_latency_avg_ms",
            "Average stage latency, 24 h (ms).",
            ["stage"],
            registry=registry,
        ),
        "p95_latency_ms": Gauge(
            "voicewatch_stage_latency_p95_ms",
            "p95 stage latency, 24 h (ms).",
            ["stage"],
            registry=registry,
        ),
        "throughput_per_hour": Gauge(
            "voicewatch_stage_throughput_per_hour",
            "Stage completions per hour, 24 h.",
            ["stage"],
            registry=registry,
        ),
        "failure_rate": Gauge(
            "voicewatch_stage_failure_rate",
            "Stage failed / started, 24 h.",
            ["stage"],
            registry=registry,
        ),
    }
    health = Gauge(
        "voicewatch_stage_health", "0 green, 1 yellow, 2 red.", ["stage"], registry=registry
    )
    for stage in stages:
        for key, metric in per_stage.items():
            metric.labels(stage=stage["stage"]).set(float(stage.get(key) or 0.0))
        health.labels(stage=stage["stage"]).set(_HEALTH.get(stage.get("health", "green"), 0))
