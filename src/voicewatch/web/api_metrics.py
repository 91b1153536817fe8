"""``/api/v1/metrics/*``: every figure comes from ``voicewatch.metrics``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine

from voicewatch import metrics, model
from voicewatch.auth import Principal
from voicewatch.web.deps import get_engine, require_staff
from voicewatch.web.responses import COMMON_ERRORS, error_responses

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"], responses=COMMON_ERRORS)
_INVALID = error_responses(422)


@router.get(
    "/realtime",
    summary="Live figures for the last 60 minutes, from counters",
    responses=_INVALID,
)
def realtime(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
    organization_id: Annotated[str | None, Query(max_length=model.ID_MAX_LEN)] = None,
) -> dict[str, Any]:
    return metrics.realtime(engine, organization_id=organization_id or None)


@router.get(
    "/history",
    summary="Snapshots for 1h/6h/24h (hourly) or 7d/30d (daily)",
    responses=_INVALID,
)
def history(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
    range_name: Annotated[Literal["1h", "6h", "24h", "7d", "30d"], Query(alias="range")] = "24h",
    organization_id: Annotated[str | None, Query(max_length=model.ID_MAX_LEN)] = None,
) -> dict[str, Any]:
    return metrics.history(engine, range_name, organization_id=organization_id or None)


@router.get("/stages", summary="Per stage: queue depth, latency, throughput, failure rate, health")
def stages(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    return metrics.stage_breakdown(engine)


@router.get(
    "/orgs",
    summary="Per organization: artifacts, latency, cost, failure rate",
    responses=_INVALID,
)
def orgs(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
    range_name: Annotated[Literal["1h", "6h", "24h", "7d", "30d"], Query(alias="range")] = "24h",
) -> dict[str, Any]:
    return metrics.org_breakdown(engine, range_name)
