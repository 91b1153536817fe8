"""Reading request bodies with a hard size cap, before any parsing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from voicewatch.web.errors import ApiError


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, or 413 as soon as it grows past ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_json_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "send JSON with 'Content-Type: application/json'")


def parse_json(body: bytes) -> Any:
    """Parse JSON, turning every way it can go wrong into a 400 with one line."""
    if not body.strip():
        raise ApiError(400, "the request body is empty")
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise ApiError(400, "the JSON is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {str(exc)[:120]}") from exc
