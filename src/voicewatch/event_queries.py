"""Reading the event log: one event as the API shows it, filters, cursors, timelines.

The other half of ``events`` (which writes the log and keeps its counters):
pages, the API and the alert rules read events through these functions.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from voicewatch import model
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_events as events_t

_TOP_LEVEL = tuple(f for f in model.EVENT_FIELDS if f != "metadata")


def event_to_dict(row: Any) -> dict[str, Any]:
    """An event row as the API shows it: the seed's fields with ``metadata`` nested."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    out: dict[str, Any] = {k: mapping[k] for k in _TOP_LEVEL}
    meta = {k: mapping[k] for k in model.METADATA_FIELDS if mapping[k] is not None}
    out["metadata"] = meta
    out["received_at"] = mapping["received_at"]
    return out


@dataclass(frozen=True)
class EventFilter:
    """Filters of the event log (all optional; times are epoch ms, ``until`` exclusive)."""

    event_types: tuple[str, ...] = ()
    pipeline_stage: str | None = None
    organization_id: str | None = None
    artifact_id: str | None = None
    errors_only: bool = False
    since: int | None = None
    until: int | None = None

    def conditions(self) -> list[Any]:
        conds: list[Any] = []
        if self.event_types:
            conds.append(events_t.c.event_type.in_(self.event_types))
        if self.pipeline_stage:
            conds.append(events_t.c.pipeline_stage == self.pipeline_stage)
        if self.organization_id:
            conds.append(events_t.c.organization_id == self.organization_id)
        if self.artifact_id:
            conds.append(events_t.c.artifact_id == self.artifact_id)
        if self.errors_only:
            conds.append(
                or_(
                    events_t.c.event_type.in_(sorted(model.FAILURE_EVENT_TYPES)),
                    events_t.c.error_code.is_not(None),
                    events_t.c.error_message.is_not(None),
                )
            )
        if self.since is not None:
            conds.append(events_t.c.timestamp >= self.since)
        if self.until is not None:
            conds.append(events_t.c.timestamp < self.until)
        return conds


class CursorError(ValueError):
    """The pagination cursor is not one this server handed out."""


def encode_cursor(timestamp: int, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{timestamp}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ts_text, id_text = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        timestamp, row_id = int(ts_text), int(id_text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise CursorError("invalid cursor") from exc
    if not (0 <= timestamp < 2**63 and 0 <= row_id < 2**63):
        raise CursorError("invalid cursor")
    return timestamp, row_id


def recent_events(
    engine: Engine,
    filters: EventFilter | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Events newest first, one page at a time; returns the items and the next cursor."""
    filters = filters or EventFilter()
    conds = filters.conditions()
    if cursor:
        ts, row_id = decode_cursor(cursor)
        conds.append(
            or_(
                events_t.c.timestamp < ts,
                and_(events_t.c.timestamp == ts, events_t.c.id < row_id),
            )
        )
    query = (
        select(events_t)
        .where(*conds)
        .order_by(events_t.c.timestamp.desc(), events_t.c.id.desc())
        .limit(limit + 1)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(query).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].timestamp, rows[-1].id)
    return [event_to_dict(r) for r in rows], next_cursor


def iter_events(
    engine: Engine, filters: EventFilter, *, page: int = 1000
) -> Iterable[dict[str, Any]]:
    """Every event matching ``filters``, newest first, fetched a page at a time (for exports)."""
    cursor: str | None = None
    while True:
        items, cursor = recent_events(engine, filters, limit=page, cursor=cursor)
        yield from items
        if cursor is None:
            return


def artifact_timeline(
    engine: Engine, artifact_id: str, *, limit: int = 2000
) -> list[dict[str, Any]]:
    """One artifact's events, oldest first (bounded: an artifact has tens of events)."""
    query = (
        select(events_t)
        .where(events_t.c.artifact_id == artifact_id)
        .order_by(events_t.c.timestamp, events_t.c.id)
        .limit(limit)
    )
    with read_connection(engine) as conn:
        return [event_to_dict(r) for r in conn.execute(query)]


def _artifacts_in_state(
    engine: Engine, state: model.TrackedState, limit: int, organization_id: str | None
) -> list[dict[str, Any]]:
    query = select(states_t).where(states_t.c.state == state.value)
    if organization_id:
        query = query.where(states_t.c.organization_id == organization_id)
    query = query.order_by(states_t.c.updated_at.desc()).limit(limit)
    with read_connection(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def artifacts_in_flight(
    engine: Engine, *, limit: int = 100, organization_id: str | None = None
) -> list[dict[str, Any]]:
    """Artifacts received but neither completed nor failed, most recently active first."""
    return _artifacts_in_state(engine, model.TrackedState.IN_FLIGHT, limit, organization_id)


def failed_artifacts(
    engine: Engine, *, limit: int = 100, organization_id: str | None = None
) -> list[dict[str, Any]]:
    """Artifacts whose latest lifecycle event is ``artifact_failed``, newest first."""
    return _artifacts_in_state(engine, model.TrackedState.FAILED, limit, organization_id)
