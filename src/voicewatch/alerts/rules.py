"""The health rules of DESIGN.md "Alerts": each says which alerts should be active now.

A rule reads its figures from ``voicewatch.metrics`` (the one definition of
each: failure rate from the counters, queue depth from the artifact states,
...) and compares them with ``AlertThresholds`` (``config.py``). It returns
``Finding``s; ``alerts.lifecycle.check_health`` turns them into stored alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine

from voicewatch import clock, names
from voicewatch.config import AlertThresholds
from voicewatch.events import E2E_LATENCY
from voicewatch.metrics import (
    budget_states,
    circuit_states,
    disambiguation_backlog,
    failure_rate,
    historical_avg_end_to_end_latency,
    queue_depth,
    waiting_artifacts,
    window_bounds,
    window_counts,
)
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM


class AlertKind(StrEnum):
    """What an alert is about (``voice_pipeline_alerts.alert_kind``)."""

    FAILURE_RATE = "high_failure_rate"
    LATENCY = "high_latency"
    QUEUE_DEPTH = "queue_depth"
    DISAMBIGUATION_BACKLOG = "disambiguation_backlog"
    CIRCUIT_BREAKER = "circuit_breaker_open"
    PIPELINE_STALLED = "pipeline_stalled"
    BUDGET = "budget"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    """A rule's verdict for one scope: this alert should be active."""

    kind: AlertKind
    scope: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleResult:
    """What one rule found: alerts that should be active, and scopes to leave alone.

    ``held`` scopes neither raise nor resolve (a half-open circuit: no new
    alert, but not recovered either).
    """

    findings: list[Finding] = field(default_factory=list)
    held: frozenset[str] = frozenset()


Rule = Callable[[Engine, int, AlertThresholds], RuleResult]


def _platform(
    kind: AlertKind, severity: Severity, message: str, details: dict[str, Any]
) -> RuleResult:
    """One alert for the whole platform (scope ``PLATFORM``): what most rules find."""
    return RuleResult([Finding(kind, PLATFORM, severity, message, details)])


def _ms_text(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


def rule_failure_rate(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """Failure rate over the last 30 min: > 10% warning, > 25% critical.

    From the minute counters: artifact_failed / artifact_received (0 when none
    was received). Needs at least ``failure_rate_min_received`` artifacts
    received in the window, so that one failed note out of one or two is not
    an alert.
    """
    counts = window_counts(engine, now=now, minutes=t.failure_rate_window_minutes)
    received = counts.get("artifact_received", (0, 0.0))[0]
    failed = counts.get("artifact_failed", (0, 0.0))[0]
    rate = failure_rate(counts)
    if received < t.failure_rate_min_received:
        return RuleResult()
    if rate > t.failure_rate_critical:
        severity, limit = Severity.CRITICAL, t.failure_rate_critical
    elif rate > t.failure_rate_warning:
        severity, limit = Severity.WARNING, t.failure_rate_warning
    else:
        return RuleResult()
    minutes = t.failure_rate_window_minutes
    return _platform(
        AlertKind.FAILURE_RATE,
        severity,
        f"Failure rate {rate:.1%} over the last {minutes} min ({failed} failed of"
        f" {received} received) is above {limit:.0%}",
        {"failure_rate": rate, "failed": failed, "received": received,
         "threshold": limit, "window_minutes": minutes},
    )  # fmt: skip


def rule_latency(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """Average end-to-end latency of the last 30 min above 2x the historical average.

    Recent: the ``e2e_latency`` counters (artifacts completed in the window).
    Historical: the hourly snapshots of the 7 days before the window, weighted
    by artifacts completed. No history (or fewer than
    ``latency_min_completed`` recent completions): no alert, since there is
    nothing trustworthy to compare.
    """
    minutes = t.latency_window_minutes
    counts = window_counts(engine, now=now, minutes=minutes)
    completed, total_ms = counts.get(E2E_LATENCY, (0, 0.0))
    if completed < max(1, t.latency_min_completed):
        return RuleResult()
    recent = total_ms / completed
    window_start, _until = window_bounds(now, minutes)
    history, history_n = historical_avg_end_to_end_latency(
        engine, since=window_start - t.latency_history_days * clock.DAY_MS, until=window_start
    )
    if history_n == 0 or history <= 0 or recent <= t.latency_factor * history:
        return RuleResult()
    return _platform(
        AlertKind.LATENCY,
        Severity.WARNING,
        f"Average end-to-end latency {_ms_text(recent)} over the last {minutes} min is"
        f" {recent / history:.1f}x the {t.latency_history_days}-day average"
        f" ({_ms_text(history)})",
        {"avg_latency_ms": recent, "completed": completed,
         "historical_avg_latency_ms": history, "historical_completed": history_n,
         "factor": t.latency_factor, "window_minutes": minutes},
    )  # fmt: skip


def rule_queue_depth(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """More than 50 artifacts in flight (received, neither completed nor failed)."""
    depth = queue_depth(engine)
    if depth <= t.queue_depth:
        return RuleResult()
    return _platform(
        AlertKind.QUEUE_DEPTH,
        Severity.WARNING,
        f"{depth} artifacts in flight (threshold {t.queue_depth})",
        {"queue_depth": depth, "threshold": t.queue_depth},
    )


def rule_disambiguation_backlog(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """More than 100 entity resolutions waiting for a coach to pick the right person."""
    backlog = disambiguation_backlog(engine)
    if backlog <= t.disambiguation_backlog:
        return RuleResult()
    return _platform(
        AlertKind.DISAMBIGUATION_BACKLOG,
        Severity.WARNING,
        f"{backlog} names wait for disambiguation (threshold {t.disambiguation_backlog})",
        {"backlog": backlog, "threshold": t.disambiguation_backlog},
    )


def rule_circuit_breaker(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """A critical alert per AI service whose circuit is open; it resolves once closed.

    Half-open (one probe call let through) neither raises nor resolves: the
    service has not recovered yet, and resolving then re-raising on every
    failed probe would flood the channel.
    """
    findings: list[Finding] = []
    held: set[str] = set()
    for service, state in sorted(circuit_states(engine).items()):
        if state == "open":
            findings.append(
                Finding(
                    AlertKind.CIRCUIT_BREAKER,
                    service,
                    Severity.CRITICAL,
                    f"The circuit breaker of AI service {service!r} is open: calls are refused",
                    {"service": service, "state": state},
                )
            )
        elif state == "half_open":
            held.add(service)
    return RuleResult(findings, frozenset(held))


def rule_pipeline_stalled(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """No artifact processed for 60 minutes while traffic is expected.

    "Processed" = an ``artifact_completed`` or ``artifact_failed`` event in the
    last ``stall_minutes`` (minute counters). "Traffic expected" = at least one
    artifact received within the last ``stall_lookback_hours`` is still in
    flight and has waited at least ``stall_minutes``: work came in and nothing
    came out. This rather than "anything received in the last 24 h" so that a
    quiet night after a busy evening (everything finished, nothing new) is not
    an alert, while a dead worker is, an hour after the first note it left
    waiting. Artifacts older than the look-back are orphans (their terminal
    event was lost); the queue-depth rule covers them.
    """
    minutes = t.stall_minutes
    counts = window_counts(engine, now=now, minutes=minutes)
    processed = (
        counts.get("artifact_completed", (0, 0.0))[0] + counts.get("artifact_failed", (0, 0.0))[0]
    )
    if processed:
        return RuleResult()
    waiting, earliest = waiting_artifacts(
        engine,
        received_from=now - t.stall_lookback_hours * clock.HOUR_MS,
        received_until=now - minutes * clock.MINUTE_MS,
    )
    if not waiting:
        return RuleResult()
    return _platform(
        AlertKind.PIPELINE_STALLED,
        Severity.CRITICAL,
        f"No artifact completed or failed in the last {minutes} min while {waiting}"
        f" artifact{'s' if waiting != 1 else ''} waited longer than that",
        {"waiting": waiting, "earliest_received_at": earliest, "window_minutes": minutes},
    )


def rule_budget(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """Per organization: today's AI spend reached its alert threshold (warning) or budget
    (critical). A budget of 0 is a deliberate stop of AI calls, not an overrun: no alert.
    """
    findings = []
    states = budget_states(engine, now)
    with read_connection(engine) as conn:  # messages name the organization, not its id
        org_names = names.organization_names(conn, [b.organization_id for b in states])
    for b in states:
        if b.daily_budget_usd <= 0:
            continue
        who = (
            "The platform"
            if b.organization_id == PLATFORM
            else org_names.get(b.organization_id, b.organization_id)
        )
        share = b.spend_usd / b.daily_budget_usd
        details = {"organization_id": b.organization_id, "spend_usd": b.spend_usd,
                   "daily_budget_usd": b.daily_budget_usd, "alert_threshold": b.alert_threshold,
                   "share": share}  # fmt: skip
        spent = f"${b.spend_usd:,.2f} of its ${b.daily_budget_usd:,.2f} daily AI budget"
        if b.spend_usd >= b.daily_budget_usd:
            findings.append(
                Finding(
                    AlertKind.BUDGET,
                    b.organization_id,
                    Severity.CRITICAL,
                    f"{who} exceeded its budget: spent {spent} ({share:.0%});"
                    " AI calls are refused until 00:00 UTC",
                    details,
                )
            )
        elif b.spend_usd >= b.threshold_usd:
            findings.append(
                Finding(
                    AlertKind.BUDGET,
                    b.organization_id,
                    Severity.WARNING,
                    f"{who} reached its budget alert threshold"
                    f" ({b.alert_threshold:.0%}): spent {spent} ({share:.0%})",
                    details,
                )
            )
    return RuleResult(findings)


#: Every rule, by the kind of alert it raises.
RULES: dict[AlertKind, Rule] = {
    AlertKind.FAILURE_RATE: rule_failure_rate,
    AlertKind.LATENCY: rule_latency,
    AlertKind.QUEUE_DEPTH: rule_queue_depth,
    AlertKind.DISAMBIGUATION_BACKLOG: rule_disambiguation_backlog,
    AlertKind.CIRCUIT_BREAKER: rule_circuit_breaker,
    AlertKind.PIPELINE_STALLED: rule_pipeline_stalled,
    AlertKind.BUDGET: rule_budget,
}
