"""Refuse a NUL character in the path or query string before any route sees it.

PostgreSQL cannot store NUL in text, so a ``%00`` in a filter would otherwise
surface as a database error (and break a CSV stream half way). A plain ASGI
middleware, so it never buffers streaming responses (SSE, CSV).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

Scope = dict[str, Any]


class NulGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw_path = scope.get("raw_path") or scope.get("path", "").encode()
            query = scope.get("query_string", b"")
            if b"\x00" in unquote_to_bytes(raw_path) or b"\x00" in unquote_to_bytes(query):
                body = json.dumps(
                    {"error": "NUL characters are not allowed in the URL", "detail": None}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
