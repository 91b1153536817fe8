"""``/api/v1/health``: liveness for load balancers; open to anyone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.health import check_database, check_queue
from voicewatch.otlp import figures
from voicewatch.pipeline.facade import transcriber_status
from voicewatch.web.deps import get_engine, get_settings
from voicewatch.web.responses import HealthBody, error_responses

router = APIRouter(prefix="/api/v1", tags=["health"])


def _unmapped(engine: Engine) -> int:
    return figures.unmapped_since(engine, now_ms() - 3_600_000)


@router.get(
    "/health",
    summary="Is the server, its database and its queue up?",
    responses={
        200: {"model": HealthBody, "description": "All is ok"},
        503: {"model": HealthBody, "description": "The database or the queue is down"},
        **error_responses(400),
    },
)
async def health(
    engine: Annotated[Engine, Depends(get_engine)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> JSONResponse:
    database = await run_in_threadpool(check_database, engine)
    queue = await run_in_threadpool(check_queue, settings.queue_url)
    transcriber = await run_in_threadpool(transcriber_status, settings)
    ok = database == "ok" and queue == "ok"
    body: dict[str, object] = {
        "status": "ok" if ok else "degraded",
        "database": database,
        "queue": queue,
        "transcriber": transcriber,
    }
    if database == "ok":
        body["otlp_unmapped_spans_60m"] = await run_in_threadpool(_unmapped, engine)
    return JSONResponse(body, status_code=200 if ok else 503)
