"""``POST /v1/traces``: OpenTelemetry traces over OTLP/HTTP (protobuf or JSON, maybe gzip).

Thin on purpose: check the content type and the token, read the body under
the size cap, then hand it to ``voicewatch.otlp`` in a worker thread. Every
answer, errors included, is in the request's content type as the OTLP
specification asks (an error is a ``google.rpc.Status``; its JSON form also
carries our ``{"error", "detail"}``). When the store cannot take the write
the answer is 503 or 507 with ``Retry-After``, as for ``/api/v1/events``; the
OTLP exporters retry those.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError

from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.otlp import decode as otlp_decode
from voicewatch.otlp.errors import DecodeError
from voicewatch.otlp.gunzip import TooLarge
from voicewatch.otlp.ingest import Outcome, clean_line, ingest, prepare
from voicewatch.web.body import read_limited
from voicewatch.web.deps import get_settings, require_ingest
from voicewatch.web.errors import ApiError, is_disk_full, log
from voicewatch.web.responses import COMMON_ERRORS, WRITE_ERRORS, error_responses

router = APIRouter(tags=["otlp"])

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "An OTLP ExportTraceServiceRequest, as application/json (below) or"
        " application/x-protobuf; Content-Encoding gzip is accepted.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
}
_ANSWER = {
    "description": "Accepted; ``partialSuccess`` says how many spans were refused and why",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "partialSuccess": {
                        "type": "object",
                        "properties": {
                            "rejectedSpans": {"type": "string"},
                            "errorMessage": {"type": "string"},
                        },
                    }
                },
            }
        }
    },
}


def _error(content_type: str, status: int, message: str, headers: Any = None) -> Response:
    body, media_type = otlp_decode.encode_error(content_type, status, clean_line(message))
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def _process(
    request: Request, body: bytes, content_type: str, settings: Settings, guarded: bool
) -> Outcome:
    """Inflate, decode, map and store (in a worker thread: all of it is CPU or I/O)."""
    raw = otlp_decode.inflate(
        body, request.headers.get("content-encoding"), settings.otlp_max_decoded_bytes
    )
    prepared = prepare(otlp_decode.decode(raw, content_type))  # the spans end here
    engine = request.app.state.engine
    store = request.app.state.group_commit.store
    return ingest(engine, prepared, store, now_ms(), guarded=guarded)


@router.post(
    "/v1/traces",
    summary="OpenTelemetry traces (OTLP/HTTP): spans become pipeline events and AI usage",
    openapi_extra=_BODY,
    responses={
        200: _ANSWER,
        **COMMON_ERRORS,
        **WRITE_ERRORS,
        **error_responses(413, 415),
    },
)
async def post_traces(request: Request) -> Response:
    """Take an OTLP export; what cannot be used is told back as a partial success."""
    content_type = otlp_decode.media_type(request.headers.get("content-type"))
    answer_type = content_type if content_type in otlp_decode.CONTENT_TYPES else otlp_decode.JSON
    try:
        principal = await require_ingest(request)
        if content_type not in otlp_decode.CONTENT_TYPES:
            raise ApiError(415, "send OTLP as application/x-protobuf or application/json")
        settings = get_settings(request)
        body = await read_limited(request, settings.max_body_bytes)
        outcome = await run_in_threadpool(
            _process, request, body, content_type, settings, not principal.is_staff
        )
    except ApiError as exc:
        return _error(answer_type, exc.status_code, exc.error, exc.headers)
    except TooLarge as exc:
        return _error(answer_type, 413, str(exc))
    except otlp_decode.UnsupportedEncoding as exc:
        return _error(answer_type, 415, str(exc))
    except DecodeError as exc:
        return _error(answer_type, 400, str(exc))
    except OperationalError as exc:
        if is_disk_full(exc):
            log.error("OTLP: the database's disk is full: %s", str(exc).splitlines()[0][:200])
            message = "the database's disk is full; nothing was stored, send again later"
            return _error(answer_type, 507, message, {"Retry-After": "10"})
        log.warning("OTLP: database unavailable: %s", str(exc).splitlines()[0][:200])
        return _error(
            answer_type, 503, "the database is unavailable; try again", {"Retry-After": "1"}
        )
    payload = otlp_decode.encode_response(
        answer_type, outcome.rejected_spans, outcome.error_message
    )
    return Response(payload, media_type=answer_type)
