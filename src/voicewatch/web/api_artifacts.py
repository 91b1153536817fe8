"""``/api/v1/artifacts``: send a note in, browse the grid, read one artifact."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine

from voicewatch import artifacts, model
from voicewatch.auth import Principal
from voicewatch.pipeline.audio_store import MAX_AUDIO_BYTES, UploadError, store_upload
from voicewatch.pipeline.repository import RecordError
from voicewatch.web.deps import get_engine, get_settings, require_ingest, require_staff
from voicewatch.web.errors import ApiError

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])

ID = Annotated[str, Form(min_length=1, max_length=model.ID_MAX_LEN)]


def _pipeline(request: Request) -> Any:
    """The web process's pipeline context, built on first use."""
    state = request.app.state
    if getattr(state, "pipeline", None) is None:
        from voicewatch.pipeline.runtime import build_context

        state.pipeline = build_context(get_settings(request))
    return state.pipeline


@router.post("", status_code=202, summary="Send one voice note (audio) or text message")
async def submit_artifact(
    request: Request,
    _principal: Annotated[Principal, Depends(require_ingest)],
    organization_id: ID,
    coach_user_id: ID,
    source_channel: Annotated[str, Form(max_length=16)] = "app",
    text: Annotated[str | None, Form(max_length=20_000)] = None,
    audio: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    from voicewatch.pipeline.intake import submit_note

    if (text is None or not text.strip()) == (audio is None):
        raise ApiError(422, "send exactly one of 'text' and 'audio'")
    audio_path = None
    if audio is not None:
        data = await audio.read(MAX_AUDIO_BYTES + 1)
        try:
            audio_path = str(store_upload(get_settings(request), audio.filename or "", data))
        except UploadError as exc:
            status = 413 if "larger" in str(exc) else 422
            raise ApiError(status, str(exc)) from exc
    pipeline = await run_in_threadpool(_pipeline, request)
    try:
        artifact = await run_in_threadpool(
            lambda: submit_note(
                pipeline,
                organization_id=organization_id,
                coach_user_id=coach_user_id,
                source_channel=source_channel,
                text=text if audio is None else None,
                audio_path=audio_path,
            )
        )
    except RecordError as exc:
        raise ApiError(422, str(exc)) from exc
    return JSONResponse({"artifact_id": artifact["artifact_id"]}, status_code=202)


class RetryRequest(BaseModel):
    stage: Literal["transcription", "claims_extraction", "entity_resolution", "full"]


@router.post("/{artifact_id}/retry", status_code=202, summary="Retry a failed artifact")
def retry_artifact(
    artifact_id: str,
    body: RetryRequest,
    request: Request,
    principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    from voicewatch.retry import RetryError, start_retry
    from voicewatch.tasks import enqueuer

    enqueue = getattr(request.app.state, "enqueue", None) or enqueuer(
        get_settings(request).queue_url
    )
    try:
        started = start_retry(
            engine,
            artifact_id[: model.ID_MAX_LEN],
            body.stage,
            requested_by=principal.name,
            enqueue=enqueue,
        )
    except RetryError as exc:
        raise ApiError(exc.status, str(exc)) from exc
    return {
        "artifact_id": started.artifact_id,
        "retry_attempt": started.retry_attempt,
        "stage": started.stage,
    }


@router.get("", summary="The artifacts grid, newest first")
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


@router.get("/{artifact_id}", summary="One artifact: transcript, claims, events, retries")
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
