"""The data pages: ``/artifacts`` (grid), ``/artifacts/{id}``, ``/events``, ``/metrics``.

Thin routes: parse the query string, check the viewer is staff, call one
function of ``voicewatch.dashboard`` (one read model per page), render.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from voicewatch import model
from voicewatch.auth import Principal
from voicewatch.dashboard import artifacts as artifacts_view
from voicewatch.dashboard import events as events_view
from voicewatch.dashboard import metrics as metrics_view
from voicewatch.dashboard.filters import BadFilter
from voicewatch.web.deps import get_engine
from voicewatch.web.errors import ApiError
from voicewatch.web.page_deps import staff_page
from voicewatch.web.templating import render

router = APIRouter(include_in_schema=False)

Staff = Annotated[Principal, Depends(staff_page)]
Text = Annotated[str, Query(max_length=model.ID_MAX_LEN)]
Short = Annotated[str, Query(max_length=64)]
Day = Annotated[str, Query(alias="from", max_length=10)]
DayTo = Annotated[str, Query(alias="to", max_length=10)]
Cursor = Annotated[str, Query(max_length=400)]


@router.get("/artifacts", response_class=HTMLResponse)
async def artifacts_grid(
    request: Request,
    _staff: Staff,
    status: Short = "",
    organization_id: Text = "",
    source_channel: Short = "",
    date_from: Day = "",
    date_to: DayTo = "",
    q: Text = "",
    cursor: Cursor = "",
    compact: bool = False,
) -> Response:
    query = artifacts_view.ArtifactQuery(
        status, organization_id, source_channel, date_from, date_to, q, cursor, compact
    )
    try:
        data = await run_in_threadpool(artifacts_view.artifacts_page, get_engine(request), query)
    except BadFilter as exc:
        raise ApiError(422, str(exc)) from exc
    return render(request, "artifacts.html", {**data, "urlencode": urlencode})


@router.get("/artifacts/{artifact_id}", response_class=HTMLResponse)
async def artifact_detail(
    request: Request,
    artifact_id: str,
    _staff: Staff,
    fragment: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    data = await run_in_threadpool(artifacts_view.artifact_page, get_engine(request), artifact_id)
    if data is None:
        raise ApiError(404, "No artifact with this id.")
    if fragment == "row":  # the grid's expandable row
        return render(request, "partials/data_artifact_expand.html", data)
    return render(request, "artifact_detail.html", data)


@router.get("/events", response_class=HTMLResponse)
async def event_log(
    request: Request,
    _staff: Staff,
    event_type: Annotated[list[str] | None, Query(max_length=64)] = None,
    pipeline_stage: Short = "",
    organization_id: Text = "",
    artifact_id: Text = "",
    errors_only: bool = False,
    date_from: Day = "",
    date_to: DayTo = "",
    cursor: Cursor = "",
    fragment: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    query = events_view.EventQuery(
        tuple(t for t in (event_type or []) if t)[:50],
        pipeline_stage,
        organization_id,
        artifact_id,
        errors_only,
        date_from,
        date_to,
        cursor,
    )
    try:
        data = await run_in_threadpool(events_view.events_page, get_engine(request), query)
    except BadFilter as exc:
        raise ApiError(422, str(exc)) from exc
    context = {**data, "urlencode": urlencode}
    if fragment == "rows":  # "Load more"
        return render(request, "partials/data_event_rows.html", context)
    return render(request, "events.html", context)


@router.get("/metrics", response_class=HTMLResponse)
async def metrics_dashboard(
    request: Request,
    _staff: Staff,
    range_name: Annotated[str, Query(alias="range", max_length=8)] = "24h",
) -> Response:
    if request.headers.get("authorization"):  # a scraper with a staff token: Prometheus text
        from voicewatch import prometheus

        body = await run_in_threadpool(prometheus.exposition, get_engine(request))
        return Response(body, media_type=prometheus.CONTENT_TYPE)
    try:
        data = await run_in_threadpool(metrics_view.metrics_page, get_engine(request), range_name)
    except BadFilter as exc:
        raise ApiError(422, str(exc)) from exc
    return render(request, "metrics.html", data)
