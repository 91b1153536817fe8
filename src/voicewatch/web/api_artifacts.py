"""``/api/v1/artifacts``: send a note in, browse the grid, read one artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine

from voicewatch import model
from voicewatch.auth import Principal
from voicewatch.dashboard import records as artifacts
from voicewatch.pipeline.facade import RecordError, UploadError, submit_note
from voicewatch.web.body import parse_json, read_limited, require_json_content_type
from voicewatch.web.deps import get_engine, get_settings, require_ingest, require_staff
from voicewatch.web.errors import ApiError
from voicewatch.web.pipeline_context import pipeline_context
from voicewatch.web.responses import COMMON_ERRORS, WRITE_ERRORS, error_responses
from voicewatch.web.uploads import save_upload
from voicewatch.web.write_gate import write_gate

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"], responses=COMMON_ERRORS)

ID = Annotated[str, Form(min_length=1, max_length=model.ID_MAX_LEN)]


@router.post(
    "",
    status_code=202,
    summary="Send one voice note (audio) or text message",
    responses={**error_responses(413, 422), **WRITE_ERRORS},
)
async def submit_artifact(
    request: Request,
    _principal: Annotated[Principal, Depends(require_ingest)],
    organization_id: ID,
    coach_user_id: ID,
    source_channel: Annotated[str, Form(max_length=16)] = "app",
    text: Annotated[str | None, Form(max_length=20_000)] = None,
    audio: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    if (text is None or not text.strip()) == (audio is None):
        raise ApiError(422, "send exactly one of 'text' and 'audio'")
    audio_path = None
    if audio is not None:
        try:
            saved = await run_in_threadpool(save_upload, get_settings(request), audio.file)
        except UploadError as exc:
            status = 413 if "larger" in str(exc) else 422
            raise ApiError(status, str(exc)) from exc
        audio_path = str(saved)
    pipeline = await run_in_threadpool(pipeline_context, request)
    gate = write_gate(request)

    def submit() -> dict[str, Any]:
        return gate.run(
            lambda: submit_note(
                pipeline,
                organization_id=organization_id,
                coach_user_id=coach_user_id,
                source_channel=source_channel,
                text=text if audio is None else None,
                audio_path=audio_path,
            ),
            "submit a note",
        )

    try:
        artifact = await run_in_threadpool(submit)
    except BaseException as exc:
        if audio_path is not None:  # no artifact points at it: do not keep it
            Path(audio_path).unlink(missing_ok=True)
        if isinstance(exc, RecordError):
            raise ApiError(422, str(exc)) from exc
        raise
    return JSONResponse({"artifact_id": artifact["artifact_id"]}, status_code=202)


class RetryRequest(BaseModel):
    stage: Literal["transcription", "claims_extraction", "entity_resolution", "full"]


#: ``{"stage": "claims_extraction"}`` is 30 bytes; anything near this cap is not a retry.
RETRY_BODY_MAX_BYTES = 16 * 1024
_RETRY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": RetryRequest.model_json_schema()}},
    }
}


async def _retry_request(request: Request) -> RetryRequest:
    """The body, read with a small cap before parsing (413), then validated (400/422).

    Declaring ``RetryRequest`` as a body parameter would let FastAPI read and
    parse a body of any size; the events route's limited reader does not.
    """
    require_json_content_type(request)
    payload = parse_json(await read_limited(request, RETRY_BODY_MAX_BYTES))
    try:
        return RetryRequest.model_validate(payload)
    except ValidationError as exc:
        problems = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(problems) from exc


@router.post(
    "/{artifact_id}/retry",
    status_code=202,
    summary="Retry a failed artifact",
    openapi_extra=_RETRY_BODY,
    responses={**error_responses(404, 409, 413, 415, 422), **WRITE_ERRORS},
)
async def retry_artifact(
    artifact_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    from voicewatch.retry import RetryError, start_retry
    from voicewatch.worker import enqueuer

    body = await _retry_request(request)

    def start() -> Any:
        enqueue = getattr(request.app.state, "enqueue", None) or enqueuer(get_settings(request))
        return write_gate(request).run(
            lambda: start_retry(
                engine,
                artifact_id[: model.ID_MAX_LEN],
                body.stage,
                requested_by=principal.name,
                enqueue=enqueue,
            ),
            "start a retry",
        )

    try:
        started = await run_in_threadpool(start)
    except RetryError as exc:
        raise ApiError(exc.status, str(exc)) from exc
    return {
        "artifact_id": started.artifact_id,
        "retry_attempt": started.retry_attempt,
        "stage": started.stage,
    }


@router.get("", summary="The artifacts grid, newest first", responses=error_responses(422))
def list_artifacts(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
    status: Annotated[str | None, Query(max_length=32)] = None,
    organization_id: Annotated[str | None, Query(max_length=model.ID_MAX_LEN)] = None,
    source_channel: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    until: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    q: Annotated[str | None, Query(max_length=model.ID_MAX_LEN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> dict[str, Any]:
    if status and status not in {s.value for s in model.ArtifactStatus}:
        raise ApiError(422, f"unknown status: {status}")
    filters = artifacts.ArtifactFilter(
        status=status or None,
        organization_id=organization_id or None,
        source_channel=source_channel or None,
        since=since,
        until=until,
        q=q or None,
    )
    try:
        items, next_cursor = artifacts.list_artifacts(engine, filters, limit=limit, cursor=cursor)
    except artifacts.CursorError as exc:
        raise ApiError(422, "invalid cursor") from exc
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{artifact_id}",
    summary="One artifact: transcript, claims, events, retries",
    responses=error_responses(404),
)
def get_artifact(
    artifact_id: str,
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    if len(artifact_id) > model.ID_MAX_LEN:
        raise ApiError(404, "unknown artifact")
    detail = artifacts.artifact_detail(engine, artifact_id)
    if detail is None:
        raise ApiError(404, "unknown artifact")
    return detail
