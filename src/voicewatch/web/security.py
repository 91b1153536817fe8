"""Sessions and CSRF for the dashboard.

Sessions are signed cookies (Starlette's SessionMiddleware, itsdangerous):
HttpOnly always, SameSite=Lax, and Secure when served over HTTPS. A state
change made with a session (not a bearer token) must carry the session's CSRF
token, in the ``X-CSRF-Token`` header or a ``csrf_token`` form field.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from voicewatch.auth import Principal
from voicewatch.model import TokenScope

SESSION_COOKIE = "vw_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use); empty without a session."""
    if "session" not in request.scope:
        return ""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def session_principal(request: Request) -> Principal | None:
    """The signed-in user, from the session cookie."""
    if "session" not in request.scope:
        return None
    user = request.session.get("user")
    if not isinstance(user, str) or not user:
        return None
    scope = TokenScope.STAFF if request.session.get("role") == "staff" else TokenScope.INGEST
    return Principal(name=user, scope=scope, via="session")


def sign_in(request: Request, principal: Principal) -> None:
    """Start a fresh session (a new CSRF token too, against session fixation)."""
    request.session.clear()
    request.session["user"] = principal.name
    request.session["role"] = "staff" if principal.is_staff else "other"
    request.session["csrf"] = secrets.token_urlsafe(24)


def sign_out(request: Request) -> None:
    request.session.clear()


async def csrf_ok(request: Request) -> bool:
    """Whether an unsafe request made with a session carries the right CSRF token."""
    expected = request.session.get("csrf") if "session" in request.scope else None
    if not expected:
        return False
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
    return hmac.compare_digest(str(sent), str(expected))
