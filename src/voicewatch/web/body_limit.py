"""Every request body is capped by route before anything reads it, and timed.

A pure ASGI middleware, outside everything else, so no route, form parser or
dependency can read more than its route allows:

- a declared ``Content-Length`` over the limit is answered 413 at once, without
  reading a byte of the body;
- a chunked (or lying) body is counted as it is read, and reading stops at the
  limit with a 413 (``ApiError``, so the usual error handlers answer);
- a body that pauses longer than ``body_timeout_s`` between chunks, or takes
  more than 20 times that in all, is answered 408 (a trickling client cannot
  hold a connection and a worker forever).

Refusals carry ``Connection: close``: the server stops reading the rest of the
body instead of draining it. Streaming responses (SSE, CSV) pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from voicewatch.pipeline.facade import MAX_AUDIO_BYTES
from voicewatch.web.errors import ApiError

Scope = dict[str, Any]
Message = dict[str, Any]

#: forms (login, logout) and small JSON bodies (retry, acknowledge): anything not listed
FORM_MAX_BYTES = 64 * 1024
#: a voice note's multipart body: the audio itself plus room for its few text fields
UPLOAD_MAX_BYTES = MAX_AUDIO_BYTES + 256 * 1024


class BodyTooLarge(ApiError):
    """The body grew past its route's limit while being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class BodyTimeout(ApiError):
    """The body did not arrive in time."""

    def __init__(self) -> None:
        super().__init__(408, "the request body arrived too slowly")


#: a text note sent as a urlencoded form: 20,000 characters, percent-encoded
NOTE_FORM_MAX_BYTES = 256 * 1024


def body_limit_for(method: str, path: str, content_type: bytes, events_max_bytes: int) -> int:
    """The most bytes a request to ``method path`` may send (the route table of limits)."""
    if method == "POST" and path in ("/api/v1/events", "/v1/traces"):
        return events_max_bytes
    if method == "POST" and path == "/api/v1/artifacts":
        return UPLOAD_MAX_BYTES if content_type.startswith(b"multipart/") else NOTE_FORM_MAX_BYTES
    return FORM_MAX_BYTES


async def _refuse(send: Any, status: int, error: str) -> None:
    body = json.dumps({"error": error, "detail": None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Cap and time request bodies (see the module docstring)."""

    def __init__(self, app: Any, *, events_max_bytes: int, body_timeout_s: float) -> None:
        self.app = app
        self.events_max_bytes = events_max_bytes
        self.idle_s = body_timeout_s
        self.total_s = body_timeout_s * 20

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = _header(scope, b"content-type").lower()
        limit = body_limit_for(scope["method"], scope["path"], content_type, self.events_max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, f"request body is larger than {limit} bytes")
            return
        state = {"read": 0, "refused": False, "started": False, "done": False}
        deadline = time.monotonic() + self.total_s

        async def limited_receive() -> Message:
            if state["refused"] or state["done"]:
                return {"type": "http.disconnect"} if state["refused"] else await receive()
            wait = min(self.idle_s, deadline - time.monotonic())
            try:
                message: Message = await asyncio.wait_for(receive(), max(wait, 0.001))
            except TimeoutError:
                state["refused"] = True
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    state["refused"] = True
                    raise BodyTooLarge(limit)
                state["done"] = not message.get("more_body", False)
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                if state["refused"]:
                    headers = [h for h in message.get("headers", []) if h[0] != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, closing_send)
        except (BodyTooLarge, BodyTimeout) as exc:  # raised where no handler answered
            if not state["started"]:
                await _refuse(send, exc.status_code, exc.error)


def _header(scope: Scope, wanted: bytes) -> bytes:
    return next((v for k, v in scope.get("headers", []) if k == wanted), b"")


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    return int(raw) if raw.strip().isdigit() else None
