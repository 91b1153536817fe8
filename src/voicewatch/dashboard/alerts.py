"""The ``/alerts`` page: active alerts (unacknowledged first) and the filtered history.

Both read the alerts through ``alerts.list_alerts``, the one query of stored
alerts. Times are UTC epoch ms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from voicewatch import alerts


def alert_groups(engine: Engine) -> dict[str, Any]:
    """Active alerts split into unacknowledged and acknowledged, newest first."""
    active = alerts.list_alerts(engine, state="active", limit=500)
    return {
        "unacknowledged": [a for a in active if not a["acknowledged"]],
        "acknowledged": [a for a in active if a["acknowledged"]],
        "active_alert_count": len(active),
    }


def alerts_page(
    engine: Engine,
    *,
    severity: str | None = None,
    kind: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Active groups plus the history table (all states), filtered, newest first."""
    rows = alerts.list_alerts(
        engine, state="all", severity=severity, kind=kind, since=since, until=until,
        limit=limit + 1,
    )  # fmt: skip
    return {
        **alert_groups(engine),
        "history": rows[:limit],
        "history_truncated": len(rows) > limit,
        "severities": [s.value for s in alerts.Severity],
        "kinds": [k.value for k in alerts.AlertKind],
    }
