"""Health rules and the alert lifecycle: raise, dedupe, escalate, acknowledge, resolve.

``check_health`` (run every 5 minutes by the worker, or by hand with
``voicewatch check-health``) evaluates every rule of DESIGN.md "Alerts" and
reconciles the result with the stored alerts:

* a rule that holds and has no active alert of its kind and scope raises one;
* a rule that holds with a higher severity than its active alert escalates
  that alert in place (warning -> critical): one alert, not two. Severity
  never drops while the alert stays active: a failure rate that fell from 30%
  to 15% is still the same incident, and it peaked critical;
* an active alert whose rule no longer holds is resolved (``state`` resolved,
  ``resolved_at`` set, ``active_key`` NULL);
* a rule that could not be evaluated (its query failed) changes nothing of
  its kind: an outage of the check is not a recovery.

"One active alert per kind and scope" is the database's job, not this
module's: ``voice_pipeline_alerts`` has a unique key on (alert_kind, scope,
active_key) where ``active_key`` is "1" while active and NULL once resolved
(NULLs never collide), and alerts are inserted with ``ON CONFLICT DO
NOTHING``. So two processes running the check at once raise one alert; the
loser finds the winner's alert and only escalates it if it must. Each change
is its own short transaction, guarded by its expected current state, so a
notification goes out once per change, from the process that made it.

Every raised, escalated and resolved alert is handed to the notification hook
(``voicewatch.notify``): the live stream for the dashboard and the optional
webhook. Notification never blocks or fails the check.

Thresholds live in ``AlertThresholds``; each default can be overridden with an
environment variable ``VOICEWATCH_ALERT_<FIELD NAME IN CAPITALS>`` (``ENV_VARS``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from voicewatch import clock
from voicewatch.events import E2E_LATENCY, count_in_flight
from voicewatch.metrics import counter_totals, safe_divide
from voicewatch.model import ResolutionStatus, TrackedState
from voicewatch.notify import ACKNOWLEDGED, ESCALATED, RAISED, RESOLVED, Notifier
from voicewatch.notify import default_notifier as _default_notifier
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import PLATFORM, ai_service_health, org_cost_budgets
from voicewatch.store.tables import voice_note_entity_resolutions as resolutions_t
from voicewatch.store.tables import voice_pipeline_alerts as alerts_t
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t

log = logging.getLogger("voicewatch.alerts")

_HOURLY = "hourly"  # voice_pipeline_metrics_snapshots.period_type of hourly rows


# =========================================================================================
# Metric inputs that metrics.py does not offer yet. Each is one small query; they are
# here only until they move to metrics.py (the one home of every metric definition).
# =========================================================================================


def historical_avg_end_to_end_latency(
    engine: Engine, *, since: int, until: int
) -> tuple[float, int]:
    """Metric input; belongs in metrics.py.

    The platform-wide average end-to-end latency (ms) over the hourly snapshots
    lying wholly in [since, until), weighted by each hour's
    ``artifacts_completed`` (so a quiet hour with one slow note does not count
    as much as a busy one). Returns (average, artifacts completed); (0.0, 0)
    when there is no history.
    """
    s = snapshots_t.c
    query = select(
        func.sum(s.avg_end_to_end_latency * s.artifacts_completed),
        func.sum(s.artifacts_completed),
    ).where(
        s.period_type == _HOURLY,
        s.scope == PLATFORM,
        s.period_start >= since,
        s.period_end <= until,
    )
    with read_connection(engine) as conn:
        weighted, completed = conn.execute(query).one()
    completed = int(completed or 0)
    return safe_divide(float(weighted or 0.0), completed), completed


def disambiguation_backlog(engine: Engine) -> int:
    """Metric input; belongs in metrics.py.

    How many entity resolutions wait for a person to choose (status
    ``needs_disambiguation``), platform-wide.
    """
    query = select(func.count()).where(
        resolutions_t.c.status == ResolutionStatus.NEEDS_DISAMBIGUATION.value
    )
    with read_connection(engine) as conn:
        return int(conn.execute(query).scalar_one())


def circuit_states(engine: Engine) -> dict[str, str]:
    """Metric input; belongs in metrics.py.

    Each AI service's circuit breaker state (closed | open | half_open), by service.
    """
    query = select(ai_service_health.c.service, ai_service_health.c.circuit_breaker_state)
    with read_connection(engine) as conn:
        return {str(r[0]): str(r[1]) for r in conn.execute(query)}


@dataclass(frozen=True)
class BudgetState:
    """An organization's daily AI budget and today's spend against it (USD)."""

    organization_id: str
    daily_budget_usd: float
    alert_threshold: float
    spend_usd: float

    @property
    def threshold_usd(self) -> float:
        """The spend at which the threshold counts as reached (rounded as budgets.py does)."""
        return round(self.alert_threshold * self.daily_budget_usd, 9)


def budget_states(engine: Engine, now_ms: int) -> list[BudgetState]:
    """Metric input; belongs in metrics.py.

    Every organization's budget with today's (UTC) spend: a row whose
    ``current_day`` is an earlier day has spent nothing today, as in
    ``pipeline/budgets.py`` (the day rolls over at UTC midnight without a job).
    """
    today = clock.to_datetime(now_ms).strftime("%Y-%m-%d")
    b = org_cost_budgets.c
    query = select(
        b.organization_id, b.daily_budget_usd, b.alert_threshold, b.current_day,
        b.current_daily_spend,
    ).order_by(b.organization_id)  # fmt: skip
    with read_connection(engine) as conn:
        rows = conn.execute(query).fetchall()
    return [
        BudgetState(
            organization_id=r.organization_id,
            daily_budget_usd=float(r.daily_budget_usd),
            alert_threshold=float(r.alert_threshold),
            spend_usd=float(r.current_daily_spend) if r.current_day == today else 0.0,
        )
        for r in rows
    ]


def waiting_artifacts(
    engine: Engine, *, received_from: int, received_until: int
) -> tuple[int, int | None]:
    """Metric input; belongs in metrics.py.

    In-flight artifacts (neither completed nor failed, per their events) whose
    ``artifact_received`` timestamp is in [received_from, received_until].
    Returns (count, earliest receipt time or None).
    """
    query = select(func.count(), func.min(states_t.c.received_at)).where(
        states_t.c.state == TrackedState.IN_FLIGHT.value,
        states_t.c.received_at >= received_from,
        states_t.c.received_at <= received_until,
    )
    with read_connection(engine) as conn:
        count, earliest = conn.execute(query).one()
    return int(count or 0), (int(earliest) if earliest is not None else None)


def window_counts(engine: Engine, *, now: int, minutes: int) -> dict[str, tuple[int, float]]:
    """Platform-wide counters of the last ``minutes`` minute buckets, by counter type.

    The window is the current (partial) minute plus the ``minutes - 1`` before
    it, like ``metrics.realtime``; stages are summed. Returns
    ``{counter_type: (count, total)}``; missing types read as (0, 0.0).
    """
    until = clock.minute_start(now) + clock.MINUTE_MS
    since = until - minutes * clock.MINUTE_MS
    out: dict[str, tuple[int, float]] = {}
    for (counter_type, _stage), (count, total) in counter_totals(
        engine, scope=PLATFORM, since=since, until=until
    ).items():
        old_count, old_total = out.get(counter_type, (0, 0.0))
        out[counter_type] = (old_count + count, old_total + total)
    return out


# =========================================================================================
# Vocabulary and thresholds
# =========================================================================================


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


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
STATES = ("active", "resolved", "all")
ENV_PREFIX = "VOICEWATCH_ALERT_"


@dataclass(frozen=True)
class AlertThresholds:
    """Every threshold of the health rules; the defaults are the seed's.

    Override any of them with ``VOICEWATCH_ALERT_<NAME>`` (``from_env``), e.g.
    ``VOICEWATCH_ALERT_QUEUE_DEPTH=80``. Comparisons are strict ("above"),
    except the budget ones, which fire when the spend *reaches* its level.
    """

    #: failure rate = artifact_failed / artifact_received over the window
    failure_rate_warning: float = 0.10
    failure_rate_critical: float = 0.25
    failure_rate_window_minutes: int = 30
    #: fewer artifacts received than this in the window: no failure-rate alert
    #: (one failed note out of one is 100%, and means nothing)
    failure_rate_min_received: int = 5
    #: recent average end-to-end latency above ``factor`` x the historical one
    latency_factor: float = 2.0
    latency_window_minutes: int = 30
    #: fewer artifacts completed than this in the window: no latency alert
    latency_min_completed: int = 5
    latency_history_days: int = 7
    #: artifacts in flight (received, neither completed nor failed)
    queue_depth: int = 50
    #: entity resolutions with status needs_disambiguation
    disambiguation_backlog: int = 100
    #: no artifact completed or failed for this long while one has waited this long
    stall_minutes: int = 60
    #: artifacts received longer ago than this do not count as waiting (orphans)
    stall_lookback_hours: int = 24

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"alert threshold {f.name} must be a finite number >= 0")
        if self.failure_rate_warning > self.failure_rate_critical:
            raise ValueError("failure_rate_warning must not exceed failure_rate_critical")
        for name in (
            "failure_rate_window_minutes", "latency_window_minutes", "latency_history_days",
            "stall_minutes", "stall_lookback_hours",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"alert threshold {name} must be at least 1")

    @classmethod
    def env_var(cls, name: str) -> str:
        return ENV_PREFIX + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertThresholds:
        """The defaults, overridden by any ``VOICEWATCH_ALERT_*`` variable that is set.

        :raises ValueError: naming the variable, when a value is not a number.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = (env.get(cls.env_var(f.name)) or "").strip()
            if not raw:
                continue
            kind = int if isinstance(f.default, int) else float
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                expected = "an integer" if kind is int else "a number"
                raise ValueError(f"{cls.env_var(f.name)}={raw!r} is not {expected}") from exc
        return cls(**values)


#: Environment variables read by ``AlertThresholds.from_env`` (the README lists them).
ENV_VARS: tuple[str, ...] = tuple(AlertThresholds.env_var(f.name) for f in fields(AlertThresholds))


# =========================================================================================
# Rules
# =========================================================================================


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
    rate = safe_divide(failed, received)
    if received < t.failure_rate_min_received:
        return RuleResult()
    if rate > t.failure_rate_critical:
        severity, limit = Severity.CRITICAL, t.failure_rate_critical
    elif rate > t.failure_rate_warning:
        severity, limit = Severity.WARNING, t.failure_rate_warning
    else:
        return RuleResult()
    minutes = t.failure_rate_window_minutes
    return RuleResult(
        [
            Finding(
                AlertKind.FAILURE_RATE,
                PLATFORM,
                severity,
                f"Failure rate {rate:.1%} over the last {minutes} min ({failed} failed of"
                f" {received} received) is above {limit:.0%}",
                {"failure_rate": rate, "failed": failed, "received": received,
                 "threshold": limit, "window_minutes": minutes},
            )
        ]
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
    window_start = clock.minute_start(now) + clock.MINUTE_MS - minutes * clock.MINUTE_MS
    history, history_n = historical_avg_end_to_end_latency(
        engine, since=window_start - t.latency_history_days * clock.DAY_MS, until=window_start
    )
    if history_n == 0 or history <= 0 or recent <= t.latency_factor * history:
        return RuleResult()
    return RuleResult(
        [
            Finding(
                AlertKind.LATENCY,
                PLATFORM,
                Severity.WARNING,
                f"Average end-to-end latency {_ms_text(recent)} over the last {minutes} min is"
                f" {recent / history:.1f}x the {t.latency_history_days}-day average"
                f" ({_ms_text(history)})",
                {"avg_latency_ms": recent, "completed": completed,
                 "historical_avg_latency_ms": history, "historical_completed": history_n,
                 "factor": t.latency_factor, "window_minutes": minutes},
            )
        ]
    )  # fmt: skip


def rule_queue_depth(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """More than 50 artifacts in flight (received, neither completed nor failed)."""
    depth = count_in_flight(engine)
    if depth <= t.queue_depth:
        return RuleResult()
    return RuleResult(
        [
            Finding(
                AlertKind.QUEUE_DEPTH,
                PLATFORM,
                Severity.WARNING,
                f"{depth} artifacts in flight (threshold {t.queue_depth})",
                {"queue_depth": depth, "threshold": t.queue_depth},
            )
        ]
    )


def rule_disambiguation_backlog(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """More than 100 entity resolutions waiting for a coach to pick the right person."""
    backlog = disambiguation_backlog(engine)
    if backlog <= t.disambiguation_backlog:
        return RuleResult()
    return RuleResult(
        [
            Finding(
                AlertKind.DISAMBIGUATION_BACKLOG,
                PLATFORM,
                Severity.WARNING,
                f"{backlog} names wait for disambiguation (threshold {t.disambiguation_backlog})",
                {"backlog": backlog, "threshold": t.disambiguation_backlog},
            )
        ]
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
    return RuleResult(
        [
            Finding(
                AlertKind.PIPELINE_STALLED,
                PLATFORM,
                Severity.CRITICAL,
                f"No artifact completed or failed in the last {minutes} min while {waiting}"
                f" artifact{'s' if waiting != 1 else ''} waited longer than that",
                {"waiting": waiting, "earliest_received_at": earliest, "window_minutes": minutes},
            )
        ]
    )


def rule_budget(engine: Engine, now: int, t: AlertThresholds) -> RuleResult:
    """Per organization: today's AI spend reached its alert threshold (warning) or budget
    (critical). A budget of 0 is a deliberate stop of AI calls, not an overrun: no alert.
    """
    findings = []
    for b in budget_states(engine, now):
        if b.daily_budget_usd <= 0:
            continue
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
                    f"{b.organization_id} exceeded its budget: spent {spent} ({share:.0%});"
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
                    f"{b.organization_id} reached its budget alert threshold"
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


# =========================================================================================
# Lifecycle
# =========================================================================================


class AlertNotFound(LookupError):
    """No alert has this id."""

    def __init__(self, alert_id: int) -> None:
        super().__init__(f"unknown alert {alert_id}")
        self.alert_id = alert_id


@dataclass
class HealthReport:
    """What one health check changed, and what is active afterwards (alert dicts)."""

    raised: list[dict[str, Any]] = field(default_factory=list)
    escalated: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)
    #: rule kind -> error, for rules that could not be evaluated this time
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "raised": self.raised,
            "escalated": self.escalated,
            "resolved": self.resolved,
            "active": self.active,
            "errors": self.errors,
        }

    def lines(self) -> list[str]:
        """One line per change, for ``voicewatch check-health``."""
        out = []
        for change, items in (
            (RAISED, self.raised), (ESCALATED, self.escalated), (RESOLVED, self.resolved)
        ):  # fmt: skip
            for a in items:
                scope = a["scope"] or "platform"
                out.append(
                    f"{change:<9} {a['severity']:<8} {a['alert_kind']} [{scope}] {a['message']}"
                )
        for kind, error in sorted(self.errors.items()):
            out.append(f"error     rule {kind} could not run: {error}")
        out.append(f"{len(self.active)} active alert{'s' if len(self.active) != 1 else ''}")
        return out


def alert_to_dict(row: Any) -> dict[str, Any]:
    """An alert row as the API shows it (``details`` parsed, ``acknowledged`` flag)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    try:
        details = json.loads(m["details"] or "{}")
    except ValueError:
        details = {}
    return {
        "id": int(m["id"]),
        "alert_kind": m["alert_kind"],
        "scope": m["scope"],
        "severity": m["severity"],
        "message": m["message"],
        "details": details,
        "state": m["state"],
        "raised_at": m["raised_at"],
        "resolved_at": m["resolved_at"],
        "acknowledged": m["acknowledged_at"] is not None,
        "acknowledged_by": m["acknowledged_by"],
        "acknowledged_at": m["acknowledged_at"],
    }


def _dumps(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def _active_alerts(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    """The active alerts, by (kind, scope)."""
    query = select(alerts_t).where(alerts_t.c.state == "active")
    with read_connection(engine) as conn:
        return {(r.alert_kind, r.scope): alert_to_dict(r) for r in conn.execute(query)}


def _load_active(engine: Engine, kind: str, scope: str) -> dict[str, Any] | None:
    query = select(alerts_t).where(
        alerts_t.c.alert_kind == kind, alerts_t.c.scope == scope, alerts_t.c.state == "active"
    )
    with read_connection(engine) as conn:
        row = conn.execute(query).first()
    return alert_to_dict(row) if row is not None else None


def _raise(engine: Engine, finding: Finding, now: int) -> dict[str, Any] | None:
    """Insert the finding as an active alert; None when one of its kind and scope exists."""
    with write_transaction(engine) as conn:
        stmt = (
            _insert(conn)(alerts_t)
            .values(
                alert_kind=finding.kind.value,
                scope=finding.scope,
                severity=finding.severity.value,
                message=finding.message,
                details=_dumps(finding.details),
                state="active",
                active_key="1",
                raised_at=now,
            )
            .on_conflict_do_nothing(index_elements=["alert_kind", "scope", "active_key"])
            .returning(alerts_t.c.id)
        )
        new_id = conn.execute(stmt).scalar()
        if new_id is None:
            return None
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == new_id)).one()
    return alert_to_dict(row)


def _guarded_update(
    engine: Engine, alert_id: int, guard: list[Any], values: dict[str, Any]
) -> dict[str, Any] | None:
    """Update one alert if it still matches ``guard``; the updated alert, or None."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(alerts_t).where(alerts_t.c.id == alert_id, *guard).values(**values)
        )
        if not result.rowcount:
            return None
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == alert_id)).one()
    return alert_to_dict(row)


def _escalate(
    engine: Engine, alert: dict[str, Any], finding: Finding, now: int
) -> dict[str, Any] | None:
    """Raise the severity of an active alert in place; None if it changed meanwhile.

    The message and details become the new finding's, plus when it escalated
    and from what (the table has no column for it; the dashboard shows it).
    """
    details = {**finding.details, "escalated_at": now, "escalated_from": alert["severity"]}
    return _guarded_update(
        engine,
        alert["id"],
        [alerts_t.c.state == "active", alerts_t.c.severity == alert["severity"]],
        {
            "severity": finding.severity.value,
            "message": finding.message,
            "details": _dumps(details),
        },
    )


def _resolve(engine: Engine, alert_id: int, now: int) -> dict[str, Any] | None:
    return _guarded_update(
        engine,
        alert_id,
        [alerts_t.c.state == "active"],
        {"state": "resolved", "active_key": None, "resolved_at": now},
    )


def _rank(severity: str) -> int:
    try:
        return _RANK[Severity(severity)]
    except ValueError:
        return 0


def check_health(
    engine: Engine,
    now_ms: int | None = None,
    thresholds: AlertThresholds | None = None,
    *,
    notifier: Notifier | None = None,
    rules: Mapping[AlertKind, Rule] | None = None,
) -> HealthReport:
    """Run every rule once and bring the stored alerts in line; idempotent.

    ``thresholds`` default to ``AlertThresholds.from_env()``; ``notifier`` to
    the process-wide one (live stream + webhook from the environment);
    ``rules`` to ``RULES``. A rule that raises is logged and reported in
    ``errors``, and its kind's alerts are left as they are.
    """
    now = clock.now_ms() if now_ms is None else now_ms
    t = thresholds if thresholds is not None else AlertThresholds.from_env()
    report = HealthReport()
    wanted: dict[tuple[str, str], Finding] = {}
    held: set[tuple[str, str]] = set()
    evaluated: set[str] = set()
    for kind, rule in (rules if rules is not None else RULES).items():
        try:
            result = rule(engine, now, t)
        except Exception as exc:
            log.exception("alert rule %s failed", kind.value)
            report.errors[kind.value] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        evaluated.add(kind.value)
        for finding in result.findings:
            wanted[(finding.kind.value, finding.scope)] = finding
        held |= {(kind.value, scope) for scope in result.held}

    active = _active_alerts(engine)
    for key, finding in sorted(wanted.items()):
        alert = active.get(key)
        if alert is None:
            raised = _raise(engine, finding, now)
            if raised is not None:
                report.raised.append(raised)
                continue
            # another process raised it since we looked: treat it as ours to escalate
            alert = _load_active(engine, *key)
            if alert is None:
                continue  # ...and it was resolved meanwhile; the next run decides
        if _rank(finding.severity) > _rank(alert["severity"]):
            escalated = _escalate(engine, alert, finding, now)
            if escalated is not None:
                report.escalated.append(escalated)
    for key, alert in sorted(active.items()):
        if key[0] in evaluated and key not in wanted and key not in held:
            resolved = _resolve(engine, alert["id"], now)
            if resolved is not None:
                report.resolved.append(resolved)

    report.active = list_alerts(engine, state="active", limit=10_000)
    _notify(notifier, RAISED, report.raised)
    _notify(notifier, ESCALATED, report.escalated)
    _notify(notifier, RESOLVED, report.resolved)
    return report


def _notify(notifier: Notifier | None, change: str, alerts: list[dict[str, Any]]) -> None:
    """Hand each change to the hook; a failing hook never fails the caller."""
    if not alerts:
        return
    try:
        hook = notifier if notifier is not None else _default_notifier()
        for alert in alerts:
            hook.alert_changed(change, alert)
    except Exception:
        log.exception("alert notification failed")


def get_alert(engine: Engine, alert_id: int) -> dict[str, Any] | None:
    """One alert by id, or None."""
    with read_connection(engine) as conn:
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == alert_id)).first()
    return alert_to_dict(row) if row is not None else None


def acknowledge(
    engine: Engine,
    alert_id: int,
    by: str,
    now_ms: int | None = None,
    *,
    notifier: Notifier | None = None,
) -> dict[str, Any]:
    """Record who acknowledged an alert and when; returns the alert.

    Acknowledging says "someone is on it"; it does not resolve: the alert stays
    active until its condition clears. The first acknowledgement wins:
    acknowledging again (or two people at once) keeps the first who and when.

    :raises AlertNotFound: when no alert has ``alert_id``.
    :raises ValueError: when ``by`` is empty.
    """
    who = (by or "").strip()[:320]
    if not who:
        raise ValueError("who acknowledges the alert must be named")
    now = clock.now_ms() if now_ms is None else now_ms
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(alerts_t)
            .where(alerts_t.c.id == alert_id, alerts_t.c.acknowledged_at.is_(None))
            .values(acknowledged_by=who, acknowledged_at=now)
        )
        changed = bool(result.rowcount)
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == alert_id)).first()
    if row is None:
        raise AlertNotFound(alert_id)
    alert = alert_to_dict(row)
    if changed:
        _notify(notifier, ACKNOWLEDGED, [alert])
    return alert


def list_alerts(
    engine: Engine,
    state: str = "active",
    severity: str | None = None,
    kind: str | None = None,
    since: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts newest first (by ``raised_at``), filtered.

    ``state`` is active, resolved or all; ``severity`` one of Severity;
    ``kind`` an alert kind; ``since`` keeps alerts raised at or after it
    (epoch ms). :raises ValueError: on an unknown state or severity.
    """
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}")
    query = select(alerts_t)
    if state != "all":
        query = query.where(alerts_t.c.state == state)
    if severity:
        if severity not in {s.value for s in Severity}:
            raise ValueError(
                f"unknown severity {severity!r}; use one of {', '.join(s.value for s in Severity)}"
            )
        query = query.where(alerts_t.c.severity == severity)
    if kind:
        query = query.where(alerts_t.c.alert_kind == kind)
    if since is not None:
        query = query.where(alerts_t.c.raised_at >= since)
    query = query.order_by(alerts_t.c.raised_at.desc(), alerts_t.c.id.desc()).limit(max(0, limit))
    with read_connection(engine) as conn:
        return [alert_to_dict(r) for r in conn.execute(query)]
