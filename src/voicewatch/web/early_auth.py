"""Who is asking is settled before a large body is read.

FastAPI parses ``Form``/``File`` parameters before it runs a route's
dependencies, so without this an anonymous client could make the server
spool a whole upload to disk before its 401. For the routes that take large
bodies, this pure ASGI middleware (inside the session middleware, outside the
router) checks the bearer token, or the session and its ``X-CSRF-Token``
header, before the route runs; the route's own dependency checks again (cheap:
the answer is kept on the request).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from voicewatch.auth import AuthError, Principal, principal_for_token
from voicewatch.web.security import session_principal

Scope = dict[str, Any]

#: (method, path) of the routes whose bodies may be large: the caller must be known first.
LARGE_BODY_ROUTES = frozenset({("POST", "/api/v1/artifacts")})


async def _answer(send: Any, status: int, error: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": error, "detail": None}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # do not read the body we refused
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _check(request: Request) -> tuple[int, str] | None:
    """None when the caller may send the body, else (status, message)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, "use 'Authorization: Bearer <token>'"
        try:
            principal: Principal | None = principal_for_token(
                request.app.state.engine, token.strip()
            )
        except AuthError:
            return 401, "invalid or revoked token"
        request.state.token_principal = principal
        return None
    principal = session_principal(request)
    if principal is None:
        return 401, "authentication required"
    if not request.headers.get("content-type", "").startswith("multipart/"):
        return None  # a small form: the route checks its csrf_token field (body_limit caps it)
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token", "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        return 403, "missing or wrong CSRF token (send it in the X-CSRF-Token header)"
    request.state.csrf_checked = True
    return None


class EarlyAuth:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) in LARGE_BODY_ROUTES:
            refused = await run_in_threadpool(_check, Request(scope))
            if refused is not None:
                status, error = refused
                extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
                await _answer(send, status, error, extra)
                return
        await self.app(scope, receive, send)
