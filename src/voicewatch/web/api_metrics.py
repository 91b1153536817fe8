"""``/api/v1/metrics/*``: every figure comes from ``voicewatch.metrics``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine

from voicewatch import metrics, model
from voicewatch.auth import Principal
from voicewatch.web.deps import get_engine, require_staff

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])


@router.get("/realtime", summary="Live figures for the last 60 minutes, from counters")
def realtime(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
    organization_id: Annotated[str | None, Query(max_length=model.ID_MAX_LEN)] = None,
) -> dict[str, Any]:
    return metrics.realtime(engine, organization_id=organization_id or None)
