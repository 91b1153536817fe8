"""What the live stream (``/api/v1/stream``) reads: new events after a row id, active alerts.

Events go out as the feed shows them (``summary.feed_event``: the event, its
row id, kind and one-line summary); alerts as the API shows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch import alerts
from voicewatch.dashboard.summary import feed_event
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_pipeline_events as events_t


def latest_event_id(engine: Engine) -> int:
    """The highest stored event row id (0 when there is none)."""
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.max(events_t.c.id))).scalar_one() or 0)


def events_after(engine: Engine, last_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Events stored with a row id above ``last_id``, oldest first, at most ``limit``."""
    query = select(events_t).where(events_t.c.id > last_id).order_by(events_t.c.id).limit(limit)
    with read_connection(engine) as conn:
        return [feed_event(r) for r in conn.execute(query)]


def events_by_ids(engine: Engine, ids: Iterable[int]) -> list[dict[str, Any]]:
    """The events among row ``ids`` that exist now (for ids skipped by a later commit)."""
    wanted = sorted(set(ids))[:1000]
    if not wanted:
        return []
    query = select(events_t).where(events_t.c.id.in_(wanted)).order_by(events_t.c.id)
    with read_connection(engine) as conn:
        return [feed_event(r) for r in conn.execute(query)]


def alerts_state(engine: Engine) -> dict[str, Any]:
    """The active alerts (for the stream's change detection) and their count."""
    active = alerts.list_alerts(engine, state="active", limit=500)
    return {"active": active, "active_count": len(active)}
