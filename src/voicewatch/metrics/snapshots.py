"""Snapshot rows: write one period's rows, read them back, find the periods to (re)build.

- ``write_snapshots`` replaces one period's snapshot rows in one transaction
  with an upsert on the unique key (period_type, scope, period_start), so
  two workers aggregating the same period at once leave one row per scope.
- ``read_snapshots``, ``range_snapshots`` and ``plan_window`` decide which
  snapshots a reader uses; ``missing_hours`` / ``missing_days`` which periods
  the catch-up builds. Storage only: the definitions are in
  ``metrics.definitions``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from voicewatch.clock import DAY_MS, HOUR_MS, day_start, hour_start
from voicewatch.clock import now_ms as clock_now
from voicewatch.metrics.totals import CATCH_UP_LOOKBACK_DAYS, DAILY, HOURLY, PERIOD_MS, RANGES
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t

#: Columns of a snapshot row the upsert may overwrite (everything but the key).
_KEY = ("period_type", "scope", "period_start")

_UPDATABLE = tuple(c.name for c in snapshots_t.columns if c.name not in (*_KEY, "id"))

#: pg_advisory_xact_lock class ids: one per period type (keys are period starts).
_LOCK_CLASS = {HOURLY: 0x56570001, DAILY: 0x56570002}


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


_PUBLIC_SKIP = frozenset({"id", "weights", "latency_histogram", "decision_metrics"})


def public_snapshot(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot row as the API shows it: DESIGN.md's fields, ``organization_id``
    (None platform-wide), without the internal ``weights`` and histograms."""
    out = {k: v for k, v in row.items() if k not in _PUBLIC_SKIP}
    out.update(json.loads(row.get("decision_metrics") or "{}"))  # the coach loop's figures
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
