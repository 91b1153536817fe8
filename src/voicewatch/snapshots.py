"""The storage side of metric snapshots: raw period figures, snapshot rows, retention.

``metrics.py`` owns every metric's definition; this module only moves data:

- ``Totals`` holds the additive raw figures of one period and scope (counts,
  sums, latency histograms) from which ``metrics.snapshot_values`` derives the
  metrics. Totals add up, so a day is the sum of its hours and a range the sum
  of its days.
- ``read_period`` runs the three SQL queries an hourly snapshot needs: one
  GROUP BY pass for every count and sum (stage durations bucketed for the
  histograms in SQL too, when the database has ``ln()``), the distinct
  cost-bearing artifacts, and one row per completed artifact for the exact
  end-to-end p95. Never one row per event into Python.
- ``plan_window``, ``range_snapshots``, ``missing_hours`` / ``missing_days``
  decide which snapshots to read and which periods to (re)build.
- ``write_snapshots`` replaces one period's snapshot rows in one transaction
  with an upsert on the unique key (period_type, scope, period_start), so
  two workers aggregating the same period at once leave one row per scope.
- ``delete_in_batches`` is retention's bounded delete: many short
  transactions, so no single one holds the write lock for long.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from voicewatch.clock import DAY_MS, HOUR_MS, day_start, hour_start
from voicewatch.clock import now_ms as clock_now
from voicewatch.events import NOT_COST_BEARING
from voicewatch.histogram import (
    INV_LOG_GAMMA,
    MIN_TRACKED_MS,
    ZERO_BUCKET,
    LatencyHistogram,
)
from voicewatch.model import PROCESSING_STAGES, TrackedState
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t

HOURLY = "hourly"
DAILY = "daily"
#: The four processing stages, in pipeline order.
STAGES: tuple[str, ...] = tuple(s.stage.value for s in PROCESSING_STAGES)
#: The histogram of end-to-end latency; the others are named after their stage.
E2E = "end_to_end"
HISTOGRAMS: tuple[str, ...] = (E2E, *STAGES)
#: Completion event type -> the stage it completes.
COMPLETION_STAGE: dict[str, str] = {
    t: s.stage.value for s in PROCESSING_STAGES for t in s.completed
}
PERIOD_MS: dict[str, int] = {HOURLY: HOUR_MS, DAILY: DAY_MS}
#: range name -> (snapshot period type, span in ms), for history and the breakdowns
RANGES: dict[str, tuple[str, int]] = {
    "1h": (HOURLY, HOUR_MS),
    "6h": (HOURLY, 6 * HOUR_MS),
    "24h": (HOURLY, DAY_MS),
    "7d": (DAILY, 7 * DAY_MS),
    "30d": (DAILY, 30 * DAY_MS),
}
#: The catch-up looks this far back by default: the hourly retention, so that the
#: catch-up never rebuilds hours that retention has just removed.
CATCH_UP_LOOKBACK_DAYS = 7
#: Columns of a snapshot row the upsert may overwrite (everything but the key).
_KEY = ("period_type", "scope", "period_start")
_UPDATABLE = tuple(c.name for c in snapshots_t.columns if c.name not in (*_KEY, "id"))
#: pg_advisory_xact_lock class ids: one per period type (keys are period starts).
_LOCK_CLASS = {HOURLY: 0x56570001, DAILY: 0x56570002}


def _stage_dict(value: Any) -> dict[str, Any]:
    return dict.fromkeys(STAGES, value)


@dataclass
class Totals:
    """Additive raw figures of one period and scope. Times are ms, money USD.

    ``e2e_values`` keeps the exact end-to-end latencies while one period's
    values are at hand (so the hourly p95 is exact); merged totals drop them
    and fall back to the histograms.
    """

    received: int = 0
    completed: int = 0
    failed: int = 0
    claims: int = 0
    entities: int = 0
    drafts: int = 0
    ai_cost: float = 0.0
    cost_artifacts: int = 0
    e2e_sum: float = 0.0
    e2e_n: int = 0
    e2e_values: list[float] | None = None
    latency_sum: dict[str, float] = field(default_factory=lambda: _stage_dict(0.0))
    latency_n: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    started: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    stage_failed: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    stage_completed: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    transcript_conf_sum: float = 0.0
    transcript_conf_n: int = 0
    claim_conf_sum: float = 0.0
    claim_conf_n: int = 0
    resolution_entities: int = 0
    resolution_disambiguations: int = 0
    histograms: dict[str, LatencyHistogram] = field(
        default_factory=lambda: {name: LatencyHistogram() for name in HISTOGRAMS}
    )

    def add_e2e(self, latencies_ms: Sequence[float], buckets: Sequence[int]) -> None:
        """Count completed artifacts' end-to-end latencies (ms) with their histogram buckets.

        The caller buckets each value once (``histogram.index_of``), as one
        value is added to two scopes (the platform and its organization).
        """
        self.e2e_sum += math.fsum(latencies_ms)
        self.e2e_n += len(latencies_ms)
        if self.e2e_values is None:
            self.e2e_values = []
        self.e2e_values.extend(latencies_ms)
        histogram = self.histograms[E2E]
        for bucket, count in Counter(buckets).items():
            histogram.add_bucket(bucket, count)

    def merge(self, other: Totals) -> Totals:
        """Add ``other`` into this one (in place); exact latency values are dropped."""
        for name in (
            "received", "completed", "failed", "claims", "entities", "drafts", "ai_cost",
            "cost_artifacts", "e2e_sum", "e2e_n", "transcript_conf_sum", "transcript_conf_n",
            "claim_conf_sum", "claim_conf_n", "resolution_entities", "resolution_disambiguations",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("latency_sum", "latency_n", "started", "stage_failed", "stage_completed"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for stage in STAGES:
                mine[stage] += theirs[stage]
        for name in HISTOGRAMS:
            self.histograms[name].merge(other.histograms[name])
        self.e2e_values = None
        return self


# --- reading one period from the event log --------------------------------------------


@dataclass(frozen=True)
class EventGroup:
    """Aggregates of the events of one (organization, event type, stage) in a period.

    When the database buckets durations itself, a group is further split by
    ``bucket``: the latency-histogram bucket (``histogram.bucket_index``) of the
    stage completion events' ``duration_ms`` (``ZERO_BUCKET`` for ~0 ms; None
    for events that are not stage completions with a duration). Every figure
    of a group is additive, so folding the split groups one by one is the same
    as folding their union.
    """

    organization_id: str | None
    event_type: str
    pipeline_stage: str | None
    events: int
    # the rest default to nothing, for groups known only by their count (counters)
    duration_sum: float = 0.0
    duration_n: int = 0
    confidence_sum: float = 0.0
    confidence_n: int = 0
    claims: int = 0
    entities: int = 0
    disambiguations: int = 0
    drafts: int = 0
    ai_cost: float = 0.0
    cost_events: int = 0
    bucket: int | None = None


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


# --- snapshot rows -------------------------------------------------------------------


def dumps(data: dict[str, Any]) -> str:
    """Compact, stable JSON for the ``weights`` and ``latency_histogram`` columns."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def write_snapshots(
    engine: Engine, period_type: str, period_start: int, rows: Sequence[dict[str, Any]]
) -> int:
    """Replace the snapshot rows of one period with ``rows``, in one transaction.

    An upsert on the unique key (period_type, scope, period_start) writes each
    row; rows of other scopes left from an earlier run are deleted. On
    PostgreSQL a transaction-scoped advisory lock on the period serialises two
    workers writing the same period (on SQLite ``BEGIN IMMEDIATE`` already
    does), so the second simply replaces the first's rows. Returns len(rows).
    """
    ordered = sorted(rows, key=lambda r: r["scope"])  # one lock order for every writer
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                {"cls": _LOCK_CLASS[period_type], "key": (period_start // 60_000) % 2**31},
            )
        if ordered:
            insert = _insert(conn)(snapshots_t)
            stmt = insert.on_conflict_do_update(
                index_elements=list(_KEY),
                set_={name: insert.excluded[name] for name in _UPDATABLE},
            )
            conn.execute(stmt, list(ordered))
        conn.execute(
            delete(snapshots_t).where(
                snapshots_t.c.period_type == period_type,
                snapshots_t.c.period_start == period_start,
                snapshots_t.c.scope.not_in([r["scope"] for r in ordered]),
            )
        )
    return len(ordered)


def read_snapshots(
    conn: Connection,
    period_type: str,
    *,
    start_from: int,
    start_before: int,
    scope: str | None = None,
    organizations_only: bool = False,
) -> list[dict[str, Any]]:
    """Snapshot rows with ``start_from <= period_start < start_before``, oldest first.

    ``scope`` picks one scope (PLATFORM or an organization id); else every
    scope, or every organization with ``organizations_only``.
    """
    s = snapshots_t.c
    query = select(snapshots_t).where(
        s.period_type == period_type, s.period_start >= start_from, s.period_start < start_before
    )
    if scope is not None:
        query = query.where(s.scope == scope)
    elif organizations_only:
        query = query.where(s.scope != PLATFORM)
    query = query.order_by(s.period_start, s.scope)
    return [dict(r._mapping) for r in conn.execute(query)]


def fresh_period_starts(
    conn: Connection, period_type: str, start_from: int, start_before: int
) -> set[int]:
    """Starts of the platform snapshots in range that were built after their period ended.

    A snapshot built while its period was still running is stale: the
    catch-up treats its period as missing and builds it again.
    """
    s = snapshots_t.c
    query = select(s.period_start).where(
        s.period_type == period_type,
        s.scope == PLATFORM,
        s.period_start >= start_from,
        s.period_start < start_before,
        s.created_at >= s.period_end,
    )
    return {int(r[0]) for r in conn.execute(query)}


def platform_period_starts(
    conn: Connection, period_type: str, start_from: int, start_before: int
) -> set[int]:
    """Starts of every platform snapshot in range (fresh or not)."""
    s = snapshots_t.c
    query = select(s.period_start).where(
        s.period_type == period_type,
        s.scope == PLATFORM,
        s.period_start >= start_from,
        s.period_start < start_before,
    )
    return {int(r[0]) for r in conn.execute(query)}


_PUBLIC_SKIP = frozenset({"id", "weights", "latency_histogram"})


def public_snapshot(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot row as the API shows it: DESIGN.md's fields, ``organization_id``
    (None platform-wide), without the internal ``weights`` and histograms."""
    out = {k: v for k, v in row.items() if k not in _PUBLIC_SKIP}
    out["organization_id"] = row["scope"] or None
    return out


def range_snapshots(
    conn: Connection,
    range_name: str,
    now: int,
    *,
    scope: str | None = None,
    organizations_only: bool = False,
) -> tuple[str, int, list[dict[str, Any]]]:
    """(period type, since, rows) of the snapshots overlapping [now - range, now).

    Hourly snapshots for 1h/6h/24h, daily for 7d/30d; a bounded index range
    on (period_type, period_start). Raises ValueError for an unknown range.
    """
    if range_name not in RANGES:
        raise ValueError(f"unknown range {range_name!r}; use one of {', '.join(RANGES)}")
    period_type, span = RANGES[range_name]
    since = now - span
    rows = read_snapshots(
        conn,
        period_type,
        start_from=since - PERIOD_MS[period_type] + 1,
        start_before=now,
        scope=scope,
        organizations_only=organizations_only,
    )
    return period_type, since, rows


def plan_window(
    conn: Connection, since: int, until: int
) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """Split [since, until) into fresh platform hourly snapshots and stretches to compute.

    Returns the snapshot rows of the whole hours that have a fresh one (built
    after the hour ended) and the (start, end) stretches left, merged where
    contiguous: the partial hours at both ends and any hour not aggregated yet.
    """
    first_full, last_full = ceil_to(since, HOUR_MS), hour_start(until)
    if first_full >= last_full:
        return [], [(since, until)] if since < until else []
    fresh = {
        r["period_start"]: r
        for r in read_snapshots(
            conn, HOURLY, start_from=first_full, start_before=last_full, scope=PLATFORM
        )
        if r["created_at"] >= r["period_end"]
    }
    rows: list[dict[str, Any]] = []
    live: list[tuple[int, int]] = []

    def add_live(start: int, end: int) -> None:
        if start < end:
            if live and live[-1][1] == start:
                live[-1] = (live[-1][0], end)
            else:
                live.append((start, end))

    add_live(since, first_full)
    for hour in range(first_full, last_full, HOUR_MS):
        if hour in fresh:
            rows.append(fresh[hour])
        else:
            add_live(hour, hour + HOUR_MS)
    add_live(last_full, until)
    return rows, live


def queue_depths(engine: Engine) -> dict[str, int]:
    """In-flight artifacts per tracked current stage (from the artifact state table)."""
    query = (
        select(states_t.c.current_stage, func.count())
        .where(states_t.c.state == TrackedState.IN_FLIGHT.value)
        .group_by(states_t.c.current_stage)
    )
    with read_connection(engine) as conn:
        return {str(r[0] or ""): int(r[1]) for r in conn.execute(query)}


# --- gaps ------------------------------------------------------------------------------


def ceil_to(ts: int, step: int) -> int:
    """The first multiple of ``step`` at or after ``ts``."""
    return ts if ts % step == 0 else ts - ts % step + step


def first_event_at(conn: Connection, start_from: int, start_before: int) -> int | None:
    """The earliest event timestamp in [start_from, start_before) (one index seek)."""
    found = conn.execute(
        select(func.min(events_t.c.timestamp)).where(
            events_t.c.timestamp >= start_from, events_t.c.timestamp < start_before
        )
    ).scalar()
    return None if found is None else int(found)


def missing_hours(
    engine: Engine,
    now: int | None = None,
    *,
    lookback_days: int = CATCH_UP_LOOKBACK_DAYS,
    since: int | None = None,
    until: int | None = None,
) -> list[int]:
    """Starts of the complete hours that have events but no fresh platform snapshot.

    A gap left while no worker ran (or a snapshot built before its hour ended).
    Looks at whole hours in [since, until) (default: the last ``lookback_days``
    up to the current hour, which is never complete). Cost: one index seek per
    hour with events, not a scan of the events.
    """
    now = clock_now() if now is None else now
    limit = hour_start(now) if until is None else min(hour_start(now), until)
    cursor = ceil_to(now - lookback_days * DAY_MS if since is None else since, HOUR_MS)
    out: list[int] = []
    with read_connection(engine) as conn:
        fresh = fresh_period_starts(conn, HOURLY, cursor, limit)
        while cursor < limit:
            first = first_event_at(conn, cursor, limit)
            if first is None:
                break
            hour = hour_start(first)
            if hour not in fresh:
                out.append(hour)
            cursor = hour + HOUR_MS
    return out


def missing_days(
    engine: Engine, now: int | None = None, *, lookback_days: int = CATCH_UP_LOOKBACK_DAYS
) -> list[int]:
    """Starts of the complete UTC days with hourly data or events but no fresh daily snapshot."""
    now = clock_now() if now is None else now
    limit = day_start(now)
    since = ceil_to(now - lookback_days * DAY_MS, DAY_MS)
    if since >= limit:
        return []
    with read_connection(engine) as conn:
        hours = platform_period_starts(conn, HOURLY, since, limit)
        fresh = fresh_period_starts(conn, DAILY, since, limit)
    hours |= set(missing_hours(engine, now, since=since, until=limit))
    return sorted({day_start(h) for h in hours} - fresh)


# --- retention ---------------------------------------------------------------------------


def delete_in_batches(
    engine: Engine,
    key: Iterable[Column[Any]],
    condition: ColumnElement[bool],
    *,
    batch_size: int,
) -> int:
    """Delete the rows matching ``condition``, ``batch_size`` at a time; returns the count.

    Each batch is its own short write transaction (``DELETE ... WHERE key IN
    (SELECT key ... LIMIT n)``), so a large purge never holds the write lock
    (SQLite) or many row locks (PostgreSQL) for long, and ingestion carries
    on between batches.
    """
    cols = list(key)
    table = cols[0].table
    picked = select(*cols).where(condition).limit(batch_size)
    target = cols[0] if len(cols) == 1 else tuple_(*cols)
    total = 0
    while True:
        with write_transaction(engine) as conn:
            deleted = conn.execute(delete(table).where(target.in_(picked))).rowcount or 0
        total += max(0, deleted)
        if deleted < batch_size:
            return total
