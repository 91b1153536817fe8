"""Reading one period of the event log, grouped as far as SQL can group it.

``read_period`` runs the few queries an hourly snapshot needs: one GROUP BY
pass for every count and sum (stage durations bucketed for the histograms in
SQL too, when the database has ``ln()``), the distinct cost-bearing artifacts,
and one row per completed artifact for the exact end-to-end p95. Never one
row per event into Python. This is the only place that aggregates raw events
for a metric; live figures come from the counters (``metrics.live``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Engine,
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from voicewatch.events import NOT_COST_BEARING
from voicewatch.histogram import INV_LOG_GAMMA, MIN_TRACKED_MS, ZERO_BUCKET
from voicewatch.metrics.totals import COMPLETION_STAGE, EventGroup
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_events as events_t


@dataclass
class PeriodData:
    """What the event log holds for one period, grouped as far as SQL can group it."""

    groups: list[EventGroup]
    #: (organization_id, artifact_id) of artifacts with a cost-bearing event
    cost_artifacts: list[tuple[str | None, str]]
    #: (organization_id, completed_at, received_at, duration_ms) per artifact_completed
    completions: list[tuple[str | None, int, int | None, float | None]]
    #: (organization_id, event_type, duration_ms) of stage completion events, only when
    #: the database cannot bucket them itself (no ``ln()``: SQLite without math functions)
    stage_durations: list[tuple[str | None, str, float]]


def _int(value: Any) -> int:
    return int(value or 0)


def _float(value: Any) -> float:
    return float(value or 0.0)


def _event_group(row: Any, width: int, bucketed: bool) -> EventGroup:
    """An ``EventGroup`` from a row of the groups query (SUMs may be NULL or Decimal)."""
    v = row[width:]
    return EventGroup(
        organization_id=row[0],
        event_type=row[1],
        pipeline_stage=row[2],
        events=_int(v[0]),
        duration_sum=_float(v[1]),
        duration_n=_int(v[2]),
        confidence_sum=_float(v[3]),
        confidence_n=_int(v[4]),
        claims=_int(v[5]),
        entities=_int(v[6]),
        disambiguations=_int(v[7]),
        drafts=_int(v[8]),
        ai_cost=_float(v[9]),
        cost_events=_int(v[10]),
        bucket=int(row[3]) if bucketed and row[3] is not None else None,
    )


#: engine url -> whether its database has ln() (PostgreSQL always; SQLite when built
#: with its math functions, as Python's usually is).
_HAS_LN: dict[str, bool] = {}


def _has_ln(engine: Engine) -> bool:
    key = str(engine.url)
    if key not in _HAS_LN:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT ceil(ln(2.0))")).scalar()
            _HAS_LN[key] = True
        except DBAPIError:
            _HAS_LN[key] = False
    return _HAS_LN[key]


def _bucket_expr() -> ColumnElement[Any]:
    """SQL for ``histogram.bucket_index(duration_ms)`` of stage completion events."""
    e = events_t.c
    index = cast(func.ceil(func.ln(e.duration_ms) * literal(INV_LOG_GAMMA, Float)), Integer)
    return case(
        (
            and_(e.event_type.in_(sorted(COMPLETION_STAGE)), e.duration_ms.is_not(None)),
            case((e.duration_ms >= MIN_TRACKED_MS, index), else_=literal(ZERO_BUCKET)),
        ),
        else_=null(),
    )


def read_period(engine: Engine, start: int, end: int) -> PeriodData:
    """Read the events of [start, end) (epoch ms) in three grouped or filtered queries.

    1. one GROUP BY (organization, event type, stage[, duration bucket]) pass
       for every count, sum and the stage latency histograms;
    2. the (organization, artifact) pairs with a cost-bearing event, grouped;
    3. each ``artifact_completed`` event with its artifact's receipt time (an
       index join to the artifact state table), for the exact p95.
    All run in one read transaction (REPEATABLE READ on PostgreSQL; a WAL read
    transaction on SQLite), so they see the same events.
    """
    e = events_t.c
    in_period = (e.timestamp >= start, e.timestamp < end)
    in_sql = _has_ln(engine)
    keys: list[ColumnElement[Any]] = [e.organization_id, e.event_type, e.pipeline_stage]
    group_keys = list(keys)
    if in_sql:
        keys.append(_bucket_expr().label("bucket"))
        # by its name: PostgreSQL would not match a repeated expression with bound values
        group_keys.append(literal_column("bucket"))
    groups_q = (
        select(
            *keys,
            func.count(),
            func.sum(e.duration_ms),
            func.count(e.duration_ms),
            func.sum(e.confidence_score),
            func.count(e.confidence_score),
            func.sum(e.claim_count),
            func.sum(e.entity_count),
            func.sum(e.disambiguation_count),
            func.sum(e.draft_count),
            func.sum(e.ai_cost),
            func.count(e.ai_cost),
        )
        .where(*in_period)
        .group_by(*group_keys)
    )
    completions_q = (
        select(e.organization_id, e.timestamp, states_t.c.received_at, e.duration_ms)
        .select_from(events_t.outerjoin(states_t, states_t.c.artifact_id == events_t.c.artifact_id))
        .where(e.event_type == "artifact_completed", *in_period)
    )
    durations_q = select(e.organization_id, e.event_type, e.duration_ms).where(
        e.event_type.in_(sorted(COMPLETION_STAGE)), *in_period, e.duration_ms.is_not(None)
    )
    width = len(keys)
    with read_connection(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        groups = [_event_group(r, width, in_sql) for r in conn.execute(groups_q).all()]
        # the artifacts with a cost-bearing event: read through the (event_type,
        # timestamp) index, only for the types that carried a cost this period
        cost_types = sorted({g.event_type for g in groups if g.cost_events} - set(NOT_COST_BEARING))
        cost_q = (
            select(e.organization_id, e.artifact_id)
            .where(
                e.event_type.in_(cost_types),
                *in_period,
                e.ai_cost.is_not(None),
                e.artifact_id.is_not(None),
            )
            .group_by(e.organization_id, e.artifact_id)
        )
        cost = [(r[0], r[1]) for r in conn.execute(cost_q).all()] if cost_types else []
        completions = [(r[0], int(r[1]), r[2], r[3]) for r in conn.execute(completions_q).all()]
        durations = (
            [] if in_sql else [(r[0], r[1], float(r[2])) for r in conn.execute(durations_q).all()]
        )
    return PeriodData(groups, cost, completions, durations)
