"""Live figures: what is true now, from counters and small state tables, never the event log.

The minute-bucket counters that ``events.log_events`` keeps give the figures
of a recent window (``counter_totals``, ``window_counts``, ``realtime``):
their cost depends on the window (60 buckets) and the number of counter
types, not on how many events exist. The state figures read one small table
each: queue depth from the artifact state table (one row per artifact),
the disambiguation backlog from the entity resolutions, circuit breaker
state from ``ai_service_health``, budget state from ``org_cost_budgets``.

Each has ONE definition here; the alerts, the dashboard, the API and the
Prometheus export all call it. Times are UTC epoch ms, costs USD.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from voicewatch import clock
from voicewatch.events import AI_COST, E2E_LATENCY
from voicewatch.metrics.definitions import safe_divide
from voicewatch.model import EVENT_TYPE_NAMES, ResolutionStatus, Stage, TrackedState
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM, ai_service_health, org_cost_budgets
from voicewatch.store.tables import voice_note_entity_resolutions as resolutions_t
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_counters as counters_t

REALTIME_WINDOW_MINUTES = 60
#: An artifact in flight whose tracked stage is unknown has not got past ingestion.
_INGESTION = Stage.INGESTION.value


# --- counters ------------------------------------------------------------------------------


def counter_totals(
    engine: Engine, *, scope: str = PLATFORM, since: int, until: int
) -> dict[tuple[str, str], tuple[int, float]]:
    """Sum the counters of ``scope`` over the minute buckets in [since, until).

    Returns ``{(counter_type, pipeline_stage): (count, total)}``.
    """
    query = (
        select(
            counters_t.c.counter_type,
            counters_t.c.pipeline_stage,
            func.sum(counters_t.c.count),
            func.sum(counters_t.c.total),
        )
        .where(
            counters_t.c.scope == scope,
            counters_t.c.bucket_start >= since,
            counters_t.c.bucket_start < until,
        )
        .group_by(counters_t.c.counter_type, counters_t.c.pipeline_stage)
    )
    with read_connection(engine) as conn:
        return {
            (row[0], row[1]): (int(row[2] or 0), float(row[3] or 0.0))
            for row in conn.execute(query)
        }


def window_bounds(now: int, minutes: int) -> tuple[int, int]:
    """[since, until) of the last ``minutes`` minute buckets, the current (partial) one included."""
    until = clock.minute_start(now) + clock.MINUTE_MS
    return until - minutes * clock.MINUTE_MS, until


def window_counts(
    engine: Engine, *, now: int, minutes: int, scope: str = PLATFORM
) -> dict[str, tuple[int, float]]:
    """The counters of the last ``minutes`` minute buckets, by counter type (stages summed).

    Returns ``{counter_type: (count, total)}``; missing types read as absent.
    """
    since, until = window_bounds(now, minutes)
    out: dict[str, tuple[int, float]] = {}
    for (counter_type, _stage), (count, total) in counter_totals(
        engine, scope=scope, since=since, until=until
    ).items():
        old_count, old_total = out.get(counter_type, (0, 0.0))
        out[counter_type] = (old_count + count, old_total + total)
    return out


def failure_rate(counts: dict[str, tuple[int, float]]) -> float:
    """Overall failure rate of a window: artifact_failed / artifact_received (0 when none)."""
    received = counts.get("artifact_received", (0, 0.0))[0]
    return safe_divide(counts.get("artifact_failed", (0, 0.0))[0], received)


def realtime(
    engine: Engine,
    *,
    organization_id: str | None = None,
    now: int | None = None,
    window_minutes: int = REALTIME_WINDOW_MINUTES,
) -> dict[str, Any]:
    """Live figures for the last ``window_minutes`` (the current minute included)."""
    now = clock.now_ms() if now is None else now
    since, until = window_bounds(now, window_minutes)
    counts: dict[str, tuple[int, float]] = defaultdict(lambda: (0, 0.0))
    counts.update(
        window_counts(engine, now=now, minutes=window_minutes, scope=organization_id or PLATFORM)
    )
    e2e_count, e2e_total = counts[E2E_LATENCY]
    return {
        "window_minutes": window_minutes,
        "since": since,
        "until": until,
        "organization_id": organization_id,
        "artifacts_received": counts["artifact_received"][0],
        "artifacts_completed": counts["artifact_completed"][0],
        "artifacts_failed": counts["artifact_failed"][0],
        "active_artifacts": queue_depth(engine, organization_id),
        "failure_rate": failure_rate(counts),
        "avg_end_to_end_latency_ms": safe_divide(e2e_total, e2e_count),
        "total_ai_cost": round(counts[AI_COST][1], 6),
        "events": int(sum(c for t, (c, _) in counts.items() if t in EVENT_TYPE_NAMES)),
        "circuit_breaker_state": circuit_breaker_state(engine),
    }


# --- queue depth -----------------------------------------------------------------------------

#: An artifact is in flight (queued) from its artifact_received until its artifact_completed
#: or artifact_failed event: the one definition of "queue depth".
IN_FLIGHT: ColumnElement[bool] = states_t.c.state == TrackedState.IN_FLIGHT.value


def at_stage(stage: str) -> ColumnElement[bool]:
    """The artifact state rows whose tracked current stage is ``stage`` (unknown = ingestion)."""
    if stage == _INGESTION:
        return (states_t.c.current_stage == _INGESTION) | states_t.c.current_stage.is_(None)
    return states_t.c.current_stage == stage


def queue_depths(engine: Engine, organization_id: str | None = None) -> dict[str, int]:
    """In-flight artifacts per tracked current stage (an artifact stays at a stage after
    finishing it until the next one starts; no stage yet counts as ingestion)."""
    query = select(states_t.c.current_stage, func.count()).where(IN_FLIGHT)
    if organization_id:
        query = query.where(states_t.c.organization_id == organization_id)
    depths: dict[str, int] = defaultdict(int)
    with read_connection(engine) as conn:
        for stage, count in conn.execute(query.group_by(states_t.c.current_stage)):
            depths[str(stage or _INGESTION)] += int(count)
    return dict(depths)


def queue_depth(engine: Engine, organization_id: str | None = None) -> int:
    """Artifacts in flight (received, neither completed nor failed): the sum over stages."""
    return sum(queue_depths(engine, organization_id).values())


def waiting_artifacts(
    engine: Engine, *, received_from: int, received_until: int
) -> tuple[int, int | None]:
    """In-flight artifacts whose ``artifact_received`` time is in [received_from, received_until].

    Returns (count, earliest receipt time or None): the stall rule's "work came in".
    """
    query = select(func.count(), func.min(states_t.c.received_at)).where(
        IN_FLIGHT,
        states_t.c.received_at >= received_from,
        states_t.c.received_at <= received_until,
    )
    with read_connection(engine) as conn:
        count, earliest = conn.execute(query).one()
    return int(count or 0), (int(earliest) if earliest is not None else None)


def waiting_condition() -> Any:
    """The SQL condition of a name a person can act on: ambiguous, or matched nobody
    and no person has said so yet (the backlog here, and the coach inbox's names)."""
    return or_(
        resolutions_t.c.status == ResolutionStatus.NEEDS_DISAMBIGUATION.value,
        and_(
            resolutions_t.c.status == ResolutionStatus.UNRESOLVED.value,
            resolutions_t.c.resolved_by.is_(None),
        ),
    )


def disambiguation_backlog(engine: Engine) -> int:
    """Names waiting for a person, all orgs (``waiting_condition``).

    ``needs_disambiguation``, and ``unresolved`` names no person has looked at
    yet: the coach loop shows them ("not on the roster?"), so a person can act.
    """
    query = select(func.count()).select_from(resolutions_t).where(waiting_condition())
    with read_connection(engine) as conn:
        return int(conn.execute(query).scalar_one())


# --- circuit breakers and budgets --------------------------------------------------------------


def circuit_states(engine: Engine) -> dict[str, str]:
    """Each AI service's circuit breaker state (closed | open | half_open), by service."""
    query = select(ai_service_health.c.service, ai_service_health.c.circuit_breaker_state)
    with read_connection(engine) as conn:
        return {str(r[0]): str(r[1]) for r in conn.execute(query)}


def circuit_breaker_state(engine: Engine) -> str:
    """The worst circuit state over the AI services: open > half_open > closed."""
    states = set(circuit_states(engine).values())
    for state in ("open", "half_open"):
        if state in states:
            return state
    return "closed"


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
    """Every organization's budget with today's (UTC) spend.

    A row whose ``current_day`` is an earlier day has spent nothing today, as in
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
