"""Request dependencies: the engine, the settings and who is asking (DESIGN.md "Access")."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine

from voicewatch import auth
from voicewatch.auth import AuthError, Principal, principal_for_token
from voicewatch.config import Settings
from voicewatch.model import TokenScope
from voicewatch.web.errors import ApiError
from voicewatch.web.security import UNSAFE_METHODS, csrf_ok, session_principal


def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def current_principal(request: Request) -> Principal | None:
    """The bearer token's principal, else the signed-in session's, else None."""
    header = request.headers.get("authorization", "")
    if header:
        checked = getattr(request.state, "token_principal", None)  # by EarlyAuth
        if isinstance(checked, Principal):
            return checked
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "use 'Authorization: Bearer <token>'", headers=_challenge())
        try:
            return principal_for_token(get_engine(request), token.strip())
        except AuthError as exc:
            raise ApiError(401, "invalid or revoked token", headers=_challenge()) from exc
    preset = getattr(request.state, "principal", None)  # `voicewatch get` runs as staff
    if isinstance(preset, Principal):
        return preset
    principal = session_principal(request)
    if principal is not None:
        request.state.principal = principal
    return principal


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}


def authenticated(request: Request) -> Principal:
    """Whoever is asking; 401 when nobody (no CSRF check: for reads and GETs)."""
    principal = current_principal(request)
    if principal is None:
        raise ApiError(401, "authentication required", headers=_challenge())
    return principal


async def _check_csrf(request: Request, principal: Principal) -> None:
    """A change made with a session cookie must carry the session's CSRF token."""
    if (
        principal.via == "session"
        and request.method in UNSAFE_METHODS
        and not getattr(request.state, "csrf_checked", False)
    ):
        if not await csrf_ok(request):
            raise ApiError(403, "missing or wrong CSRF token")
        request.state.csrf_checked = True


async def require_ingest(request: Request) -> Principal:
    """Ingest or staff: may send events and notes (a coach's token or session may not)."""
    principal = authenticated(request)
    if principal.scope is TokenScope.COACH:
        raise ApiError(403, "ingest or platform staff only")
    await _check_csrf(request, principal)
    return principal


async def require_staff(request: Request) -> Principal:
    """Platform staff only: everything that reads or changes the harness.

    A change made with a session cookie must also carry its CSRF token.
    """
    principal = authenticated(request)
    if not principal.is_staff:
        raise ApiError(403, "platform staff only")
    await _check_csrf(request, principal)
    return principal


def still_signed_in(request: Request, principal: Principal) -> bool:
    """Whether ``principal`` may still act: long streams (SSE) re-check it now and then,
    so a sign-out, a removed account or a revoked token also ends them."""
    engine = get_engine(request)
    if principal.via == "session":
        return (
            auth.session_principal(engine, principal.user_id, principal.session_generation)
            is not None
        )
    if principal.via == "token":
        _, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            principal_for_token(engine, token.strip())
        except AuthError:
            return False
    return True
