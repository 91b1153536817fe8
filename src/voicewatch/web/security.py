"""Sessions and CSRF for the dashboard.

Sessions are signed cookies (Starlette's SessionMiddleware, itsdangerous):
HttpOnly always, SameSite=Lax, and Secure when served over HTTPS. The cookie
names the user and their session generation, checked against the database on
every request (``auth.session_principal``): signing out, a password change or
removing the account ends it at once. A state change made with a session (not
a bearer token) must carry the session's CSRF token, in the ``X-CSRF-Token``
header or a ``csrf_token`` field of a urlencoded form (never read from a
multipart body: an upload is not spooled before its CSRF token is checked).
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from voicewatch import auth
from voicewatch.auth import Principal

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
    """The signed-in user, from the session cookie, if its session was not ended.

    Checked once per request (the answer is kept on ``request.state``).
    """
    if "session" not in request.scope:
        return None
    cached = getattr(request.state, "session_principal", False)
    if cached is not False:
        return cached if isinstance(cached, Principal) else None
    user_id, generation = request.session.get("uid"), request.session.get("gen")
    principal = None
    if isinstance(user_id, str) and user_id and type(generation) is int:
        principal = auth.session_principal(request.app.state.engine, user_id, generation)
    request.state.session_principal = principal
    return principal


def sign_in(request: Request, principal: Principal) -> None:
    """Start a fresh session (a new CSRF token too, against session fixation)."""
    request.session.clear()
    request.session["uid"] = principal.user_id
    request.session["gen"] = principal.session_generation
    request.session["csrf"] = secrets.token_urlsafe(24)
    request.state.session_principal = principal


def sign_out(request: Request) -> None:
    """End this user's sessions everywhere (the cookie alone is not enough: it may be copied)."""
    principal = session_principal(request)
    if principal is not None:
        auth.end_sessions(request.app.state.engine, principal.user_id)
    request.session.clear()
    request.state.session_principal = None


async def csrf_ok(request: Request) -> bool:
    """Whether an unsafe request made with a session carries the right CSRF token."""
    expected = request.session.get("csrf") if "session" in request.scope else None
    if not expected:
        return False
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form(max_files=0, max_fields=64)
        sent = str(form.get("csrf_token", ""))
    return hmac.compare_digest(str(sent), str(expected))
