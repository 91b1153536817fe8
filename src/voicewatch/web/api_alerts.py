"""``/api/v1/alerts``: list alerts and acknowledge one. Staff only; the logic is in ``alerts``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine

from voicewatch import alerts
from voicewatch.auth import Principal
from voicewatch.web.deps import get_engine, require_staff
from voicewatch.web.errors import ApiError
from voicewatch.web.responses import COMMON_ERRORS, WRITE_ERRORS, error_responses

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=COMMON_ERRORS)

_MAX_ID = 2**63 - 1  # a BIGINT; anything larger cannot name an alert


@router.get(
    "", summary="Alerts, newest first: active (default) or all", responses=error_responses(422)
)
def list_alerts(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
    state: Literal["active", "resolved", "all"] = "active",
    severity: Literal["info", "warning", "critical"] | None = None,
    kind: Annotated[str | None, Query(max_length=48)] = None,
    since: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    items = alerts.list_alerts(
        engine, state=state, severity=severity, kind=kind or None, since=since, limit=limit
    )
    return {"state": state, "items": items}


@router.post(
    "/{alert_id}/acknowledge",
    summary="Record that you are on it (does not resolve)",
    responses={**error_responses(404, 422), **WRITE_ERRORS},
)
def acknowledge_alert(
    alert_id: str,
    principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    """The alert with ``acknowledged_by`` (the caller's name) and ``acknowledged_at``.

    The first acknowledgement is kept; an unknown (or malformed) id is a 404.
    """
    if not (alert_id.isascii() and alert_id.isdigit() and len(alert_id) <= 19):
        raise ApiError(404, "unknown alert")
    if not 0 < int(alert_id) <= _MAX_ID:
        raise ApiError(404, "unknown alert")
    try:
        return alerts.acknowledge(engine, int(alert_id), by=principal.name)
    except alerts.AlertNotFound as exc:
        raise ApiError(404, "unknown alert") from exc
