"""Browser hardening headers on every response, and redirects that never name our Host.

A pure ASGI middleware (it never buffers SSE or CSV streams). What it sets:

- ``Content-Security-Policy``: scripts, styles, images and connections from our
  own origin only (no inline script or style: templates load ``/static`` files),
  no plugins, no ``<base>``, forms post only to us, and ``frame-ancestors 'none'``
  with ``X-Frame-Options: DENY`` for older browsers, so no other site can frame
  a page and steer clicks on it;
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``;
- ``Cache-Control: no-store`` on everything but ``/static`` (pages and API
  answers hold staff data and must not stay in a shared or browser cache);
- ``Strict-Transport-Security`` when cookies are marked Secure (served over HTTPS).

A ``Location`` that points at the request's own Host is rewritten to a path:
Starlette's trailing-slash redirect builds an absolute URL from the Host header,
which a client chooses (``Host: evil.example`` must not send anyone there).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

Scope = dict[str, Any]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(path: str, *, hsts: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response to ``path`` carries (also used by the 500 handler)."""
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if not path.startswith("/static/"):
        headers.append((b"cache-control", b"no-store"))
    if hsts:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


_OURS = frozenset(name for name, _ in security_headers("/", hsts=True))


def _relative(location: bytes, host: bytes) -> bytes:
    """``http://<our host>/x?y`` -> ``/x?y``; any other location is kept."""
    try:
        parts = urlsplit(location.decode("latin-1"))
    except ValueError:
        return location
    if parts.scheme in ("http", "https") and parts.netloc.encode("latin-1").lower() == host:
        path = parts.path or "/"
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")
    return location


class SecurityHeaders:
    def __init__(self, app: Any, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ours = security_headers(scope.get("path", "/"), hsts=self.hsts)
        host = next((v.lower() for k, v in scope.get("headers", []) if k == b"host"), b"")

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                kept = []
                for name, value in message.get("headers", []):
                    lower = name.lower()
                    if lower in _OURS:
                        continue
                    if lower == b"location":
                        value = _relative(value, host)
                    kept.append((name, value))
                message = {**message, "headers": [*kept, *ours]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
