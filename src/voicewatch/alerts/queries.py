"""Reading stored alerts: the one list query (API, pages, stream) and the alert as shown.

``voice_pipeline_alerts`` rows become dicts with ``details`` parsed and an
``acknowledged`` flag (``alert_to_dict``); ``list_alerts`` filters them
newest first. Times are UTC epoch ms.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch.alerts.rules import Severity
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_pipeline_alerts as alerts_t

STATES = ("active", "resolved", "all")


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


def active_by_key(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    """The active alerts, by (kind, scope)."""
    query = select(alerts_t).where(alerts_t.c.state == "active")
    with read_connection(engine) as conn:
        return {(r.alert_kind, r.scope): alert_to_dict(r) for r in conn.execute(query)}


def load_active(engine: Engine, kind: str, scope: str) -> dict[str, Any] | None:
    query = select(alerts_t).where(
        alerts_t.c.alert_kind == kind, alerts_t.c.scope == scope, alerts_t.c.state == "active"
    )
    with read_connection(engine) as conn:
        row = conn.execute(query).first()
    return alert_to_dict(row) if row is not None else None


def get_alert(engine: Engine, alert_id: int) -> dict[str, Any] | None:
    """One alert by id, or None."""
    with read_connection(engine) as conn:
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == alert_id)).first()
    return alert_to_dict(row) if row is not None else None


def list_alerts(
    engine: Engine,
    state: str = "active",
    severity: str | None = None,
    kind: str | None = None,
    since: int | None = None,
    limit: int = 100,
    *,
    until: int | None = None,
) -> list[dict[str, Any]]:
    """Alerts newest first (by ``raised_at``), filtered.

    ``state`` is active, resolved or all; ``severity`` one of Severity;
    ``kind`` an alert kind; ``since`` keeps alerts raised at or after it and
    ``until`` those raised before it (epoch ms).
    :raises ValueError: on an unknown state or severity.
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
    if until is not None:
        query = query.where(alerts_t.c.raised_at < until)
    query = query.order_by(alerts_t.c.raised_at.desc(), alerts_t.c.id.desc()).limit(max(0, limit))
    with read_connection(engine) as conn:
        return [alert_to_dict(r) for r in conn.execute(query)]


def count_active(engine: Engine) -> int:
    """How many alerts are active now (the badge on every page's alerts tab)."""
    query = select(func.count()).where(alerts_t.c.state == "active")
    with read_connection(engine) as conn:
        return int(conn.execute(query).scalar_one())
