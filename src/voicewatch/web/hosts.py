"""``VOICEWATCH_TRUSTED_HOSTS``: answer only the Host names the operator lists.

Starlette's ``TrustedHostMiddleware`` answers a plain-text 400; ours sends the
contract's JSON error body. Names match exactly or, written ``*.example.org``,
any sub-domain of it; the port is ignored.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether the Host header value ``host`` (with or without a port) is listed."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip().lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class TrustedHosts:
    def __init__(self, app: Any, *, allowed: list[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = next((v for k, v in scope.get("headers", []) if k == b"host"), b"")
            if not host_allowed(raw.decode("latin-1"), self.allowed):
                body = json.dumps(
                    {"error": "this Host is not served here", "detail": None}
                ).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 400, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
