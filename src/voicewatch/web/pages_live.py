"""The live pages: ``/`` overview, ``/pipeline`` (and a stage's detail), ``/alerts``.

Each route checks the viewer (``staff_page``), calls one function of
``voicewatch.dashboard`` (one read model per page) in the thread pool and
renders its dict. The ``.../live`` routes return the HTML fragments the
pages swap in when the stream says something changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from voicewatch import alerts
from voicewatch.auth import Principal
from voicewatch.clock import DAY_MS
from voicewatch.dashboard import alerts as alerts_view
from voicewatch.dashboard import overview as overview_view
from voicewatch.dashboard import pipeline as pipeline_view
from voicewatch.dashboard.summary import is_stage
from voicewatch.web.deps import get_engine
from voicewatch.web.errors import ApiError
from voicewatch.web.page_deps import staff_page
from voicewatch.web.templating import render

router = APIRouter(include_in_schema=False)

Staff = Annotated[Principal, Depends(staff_page)]
Db = Annotated[Engine, Depends(get_engine)]


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, _staff: Staff, engine: Db) -> Response:
    context = await run_in_threadpool(overview_view.overview_page, engine)
    return render(request, "overview.html", context)


@router.get("/overview/live", response_class=HTMLResponse)
async def overview_live(request: Request, _staff: Staff, engine: Db) -> Response:
    context = await run_in_threadpool(overview_view.overview_live, engine)
    return render(request, "partials/live_overview.html", context)


def _stage(stage: str | None) -> str | None:
    if stage is None or stage == "":
        return None
    if not is_stage(stage):
        raise ApiError(404, f"unknown stage {stage[:40]!r}")
    return stage


@router.get("/pipeline", response_class=HTMLResponse)
async def pipeline(
    request: Request,
    _staff: Staff,
    engine: Db,
    stage: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    if stage:
        _stage(stage)
        return RedirectResponse(f"/pipeline/{stage}", status_code=303)
    context = await run_in_threadpool(pipeline_view.pipeline_page, engine, None)
    return render(request, "pipeline.html", context)


@router.get("/pipeline/live", response_class=HTMLResponse)
async def pipeline_live(
    request: Request,
    _staff: Staff,
    engine: Db,
    stage: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    context = await run_in_threadpool(pipeline_view.pipeline_live, engine, _stage(stage))
    return render(request, "partials/live_pipeline.html", context)


@router.get("/pipeline/{stage}", response_class=HTMLResponse)
async def pipeline_stage(request: Request, stage: str, _staff: Staff, engine: Db) -> Response:
    context = await run_in_threadpool(pipeline_view.pipeline_page, engine, _stage(stage))
    return render(request, "pipeline.html", context)


_SEVERITIES = frozenset(s.value for s in alerts.Severity)
_KINDS = frozenset(k.value for k in alerts.AlertKind)


def _day(text: str | None, field: str) -> int | None:
    """``YYYY-MM-DD`` (UTC) as epoch ms of that midnight; 422 when malformed."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ApiError(422, f"{field}: use YYYY-MM-DD") from exc
    return int(day.timestamp() * 1000)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(
    request: Request,
    _staff: Staff,
    engine: Db,
    severity: Annotated[str, Query(max_length=16)] = "",
    kind: Annotated[str, Query(max_length=48)] = "",
    date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=10)] = "",
) -> Response:
    severity = severity if severity in _SEVERITIES else ""
    kind = kind if kind in _KINDS else ""
    since = _day(date_from, "from")
    until = _day(date_to, "to")
    context = await run_in_threadpool(
        lambda: alerts_view.alerts_page(
            engine,
            severity=severity or None,
            kind=kind or None,
            since=since,
            until=until + DAY_MS if until is not None else None,  # "to" is inclusive
        )
    )
    context["filters"] = {"severity": severity, "kind": kind, "from": date_from, "to": date_to}
    return render(request, "alerts.html", context)


@router.get("/alerts/live", response_class=HTMLResponse)
async def alerts_live(request: Request, _staff: Staff, engine: Db) -> Response:
    context = await run_in_threadpool(alerts_view.alert_groups, engine)
    return render(request, "partials/live_alert_groups.html", context)
