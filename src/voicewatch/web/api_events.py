"""``/api/v1/events``: ingest (POST), the event log (GET) and its CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import Engine

from voicewatch import event_queries, events, model
from voicewatch.auth import Principal
from voicewatch.ingest_guard import split_reserved
from voicewatch.validation import Invalid
from voicewatch.web.body import parse_json, read_limited, require_json_content_type
from voicewatch.web.deps import get_engine, get_settings, require_ingest, require_staff
from voicewatch.web.errors import ApiError
from voicewatch.web.responses import (
    COMMON_ERRORS,
    WRITE_ERRORS,
    ErrorBody,
    IngestResult,
    error_responses,
)

router = APIRouter(prefix="/api/v1", tags=["events"], responses=COMMON_ERRORS)

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event_id", "event_type", "timestamp"],
    "properties": {
        "event_id": {"type": "string", "maxLength": model.ID_MAX_LEN},
        "event_type": {"type": "string", "enum": sorted(model.EVENT_TYPE_NAMES)},
        "timestamp": {"type": "integer", "description": "epoch ms, UTC"},
        "pipeline_stage": {"type": "string", "enum": [s.value for s in model.Stage]},
        "metadata": {"type": "object"},
    },
    "additionalProperties": True,
}
_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {"type": "array", "items": _EVENT_SCHEMA, "maxItems": 1000},
                    ]
                }
            }
        },
    }
}


@router.post(
    "/events",
    openapi_extra=_INGEST_BODY,
    summary="Send one event or a batch",
    responses={
        200: {"model": IngestResult, "description": "Some events landed (or were duplicates)"},
        **error_responses(413, 415),
        **WRITE_ERRORS,
        422: {
            "model": IngestResult | ErrorBody,
            "description": "Every item was refused (per item), or the body is not events",
        },
    },
)
async def post_events(
    request: Request, principal: Annotated[Principal, Depends(require_ingest)]
) -> JSONResponse:
    """Store events; each bad item is reported by index while the good ones land.

    An ingest token may not write events about the built-in pipeline's
    artifacts (``ingest_guard``): those items are refused one by one.
    """
    require_json_content_type(request)
    body = await read_limited(request, get_settings(request).max_body_bytes)
    payload = parse_json(body)
    if isinstance(payload, dict):
        items: list[Any] = [payload]
    elif isinstance(payload, list):
        items = payload
    else:
        raise ApiError(422, "send one event object or a list of events")
    if not items:
        raise ApiError(422, "the batch is empty")
    if len(items) > model.MAX_BATCH_EVENTS:
        raise ApiError(413, f"a batch holds at most {model.MAX_BATCH_EVENTS} events")
    if principal.is_staff:
        result = await run_in_threadpool(request.app.state.group_commit.store, items)
    else:
        result = await run_in_threadpool(_store_outside_the_pipeline, request, items)
    landed = result.accepted + result.duplicates
    return JSONResponse(result.as_dict(), status_code=200 if landed else 422)


def _store_outside_the_pipeline(request: Request, items: list[Any]) -> events.LogResult:
    """Store what an ingest token may write; refusals keep the request's own indexes."""
    kept, origin, refused = split_reserved(get_engine(request), items)
    result = request.app.state.group_commit.store(kept) if kept else events.LogResult()
    moved = [Invalid(origin[r.index], r.error) for r in result.rejected]
    result.rejected = sorted([*refused, *moved], key=lambda r: r.index)
    return result  # type: ignore[no-any-return]


def _filters(
    event_type: list[str] | None,
    pipeline_stage: str | None,
    organization_id: str | None,
    artifact_id: str | None,
    errors_only: bool,
    since: int | None,
    until: int | None,
) -> event_queries.EventFilter:
    types = tuple(t for t in (event_type or []) if t)
    unknown = [t for t in types if t not in model.EVENT_TYPE_NAMES]
    if unknown:
        raise ApiError(422, f"unknown event_type: {unknown[0][:64]}")
    if pipeline_stage and pipeline_stage not in {s.value for s in model.Stage}:
        raise ApiError(422, f"unknown pipeline_stage: {pipeline_stage[:64]}")
    return event_queries.EventFilter(
        event_types=types,
        pipeline_stage=pipeline_stage or None,
        organization_id=organization_id or None,
        artifact_id=artifact_id or None,
        errors_only=errors_only,
        since=since,
        until=until,
    )


class EventQuery:
    """The event log's query string, shared by the JSON and CSV routes."""

    def __init__(
        self,
        event_type: Annotated[list[str] | None, Query(max_length=64)] = None,
        pipeline_stage: Annotated[str | None, Query(max_length=64)] = None,
        organization_id: Annotated[str | None, Query(max_length=model.ID_MAX_LEN)] = None,
        artifact_id: Annotated[str | None, Query(max_length=model.ID_MAX_LEN)] = None,
        errors_only: bool = False,
        since: Annotated[int | None, Query(ge=0, le=2**53)] = None,
        until: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    ) -> None:
        self.filters = _filters(
            event_type, pipeline_stage, organization_id, artifact_id, errors_only, since, until
        )


@router.get("/events", summary="The event log, newest first", responses=error_responses(422))
def list_events(
    _principal: Annotated[Principal, Depends(require_staff)],
    query: Annotated[EventQuery, Depends()],
    engine: Annotated[Engine, Depends(get_engine)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    try:
        items, next_cursor = event_queries.recent_events(
            engine, query.filters, limit=limit, cursor=cursor or None
        )
    except event_queries.CursorError as exc:
        raise ApiError(422, "invalid cursor") from exc
    return {"items": items, "next_cursor": next_cursor}


CSV_COLUMNS: tuple[str, ...] = (
    *(f for f in model.EVENT_FIELDS if f != "metadata"),
    *model.METADATA_FIELDS,
)


#: what a spreadsheet may read as the start of a formula (ASCII and fullwidth forms)
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\u2212")
#: what it may skip before that: blanks, NBSP, zero-width and other invisible characters
_INVISIBLE = " \t\r\n\u00a0\u200b\u200c\u200d\u2060\ufeff\u3000"


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: a cell that could start one gets a leading quote.

    Spreadsheets trim leading blanks (a space, NBSP, a zero-width space, a line
    break) and accept the fullwidth signs (U+FF1D, FF0B, FF0D, FF20), so those count too;
    so does a formula on any later line of a multi-line cell.
    """
    if not isinstance(value, str) or not value:
        return value
    if value[0] in "\t\r" or any(
        line.lstrip(_INVISIBLE)[:1] in _FORMULA_START for line in value.splitlines()
    ):
        return "'" + value
    return value


def _csv_rows(engine: Engine, filters: event_queries.EventFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for item in event_queries.iter_events(engine, filters):
        flat = {**item, **item["metadata"]}
        writer.writerow([_csv_safe(flat.get(c)) for c in CSV_COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get("/events.csv", summary="The filtered event log as CSV", responses=error_responses(422))
def export_events_csv(
    _principal: Annotated[Principal, Depends(require_staff)],
    query: Annotated[EventQuery, Depends()],
    engine: Annotated[Engine, Depends(get_engine)],
) -> StreamingResponse:
    return StreamingResponse(
        _csv_rows(engine, query.filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="voicewatch-events.csv"'},
    )
