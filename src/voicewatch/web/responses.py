"""What the API really sends back, declared for ``/openapi.json``.

FastAPI declares its own ``HTTPValidationError`` (``{"detail": [{loc, msg,
type}]}``) for 422, but our handlers (``errors.py``) send the contract's
``{"error": str, "detail": ...}`` for every error. Clients generated from the
description, and schemathesis's response check, would trust the wrong shape;
so every route declares ``ErrorBody`` for the codes it can send, and
``contract_error_schemas`` swaps out any default 422 a route forgets.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

#: Why each code is sent, shown in /docs and the OpenAPI description.
_WHY: dict[int, str] = {
    400: "Malformed request: a NUL in the URL, or a body that is empty or not JSON",
    401: "No credentials, or an invalid or revoked token",
    403: "Not allowed for this token's scope, or a session change without its CSRF token",
    404: "Unknown id",
    409: "Conflicts with the current state",
    413: "The request body is too large",
    415: "The body is not JSON",
    422: "A parameter or field is invalid",
    429: "Too many attempts; retry later",
    503: "The database is unavailable; retry after the Retry-After delay",
    507: "The database's disk is full: nothing was stored; send again once space is freed",
}
_FASTAPI_DEFAULTS = ("HTTPValidationError", "ValidationError")


class ErrorBody(BaseModel):
    """The contract's error body (CONTRACT.md: ``{"error": "...", "detail": ...}``)."""

    error: str = Field(description="One line saying what went wrong")
    detail: Any = Field(description="Structured detail (e.g. each invalid field), or null")


class Rejection(BaseModel):
    index: int = Field(description="Position of the refused item in the batch")
    error: str


class IngestResult(BaseModel):
    """``POST /api/v1/events``: what landed; sent with 422 when every item was refused."""

    accepted: int
    duplicates: int
    rejected: list[Rejection]


class HealthBody(BaseModel):
    """``GET /api/v1/health``: 200 when all is ok, 503 (same body) when degraded."""

    status: str
    database: str
    queue: str
    otlp_unmapped_spans_60m: int | None = Field(
        default=None, description="OTLP spans of the last 60 minutes that mapped to nothing"
    )
    #: which recogniser transcribes audio notes: "whisper faster-whisper-tiny.en",
    #: "pocketsphinx" (": <why not whisper>" when it fell back), "whisper refused: ..."
    transcriber: str | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring ``ErrorBody`` for each status code."""
    return {code: {"model": ErrorBody, "description": _WHY[code]} for code in codes}


#: What any authenticated API route can send: a NUL in the URL (NulGuard), no or a bad
#: token, the wrong scope or a missing CSRF token, and the database being down.
COMMON_ERRORS = error_responses(400, 401, 403, 503)
#: What a route that writes can send on top: the database's disk being full.
WRITE_ERRORS = error_responses(507)


def contract_error_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    """Replace FastAPI's default 422 schema with ``ErrorBody`` wherever one is left.

    Routes declare their errors; this is the safety net for a route that
    forgets, so the description never promises a body the server does not send.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    default_ref = "#/components/schemas/HTTPValidationError"
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is None:
                continue
            content = response.get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref") == default_ref:
                content["schema"] = dict(error_ref)
                response["description"] = _WHY[422]
                schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    for name in _FASTAPI_DEFAULTS:
        schemas.pop(name, None)
    text = json.dumps(spec)
    for name in _FASTAPI_DEFAULTS:  # nothing may still point at what was removed
        if f"#/components/schemas/{name}" in text:
            raise RuntimeError(f"the OpenAPI description still refers to {name}")
    return spec
