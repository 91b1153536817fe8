"""``/login`` and ``/logout``: the only pages open to everyone.

Throttling (``login_limit.py``) is keyed on the socket's address and the
account, or, for a browser that signed in to that account before (a signed
``vw_device`` cookie, 90 days), on that known device alone.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from voicewatch.auth import AuthError, check_password
from voicewatch.model import TokenScope
from voicewatch.web.deps import get_engine
from voicewatch.web.login_limit import LoginLimiter
from voicewatch.web.security import csrf_ok, sign_in, sign_out
from voicewatch.web.templating import render

router = APIRouter(include_in_schema=False)

DEVICE_COOKIE = "vw_device"
DEVICE_MAX_AGE_S = 90 * 24 * 3600


def _devices(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.secret_key, salt="vw-known-device")


def _known_device(request: Request, email: str) -> bool:
    """Whether this browser signed in to ``email`` before (its signed cookie says so)."""
    cookie = request.cookies.get(DEVICE_COOKIE, "")
    if not cookie or len(cookie) > 2000:
        return False
    try:
        known = _devices(request).loads(cookie, max_age=DEVICE_MAX_AGE_S)
    except BadSignature:
        return False
    return isinstance(known, str) and known == email.strip().lower()


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    client = request.client.host if request.client else "unknown"
    limiter: LoginLimiter = request.app.state.login_limiter
    if not await csrf_ok(request):
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": "Your session expired; please try again."},
            403,
        )
    keys = limiter.keys(client, email, _known_device(request, email))
    wait_ms = limiter.wait_ms(keys)
    if wait_ms:
        seconds = max(1, -(-wait_ms // 1000))
        page = render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": f"Too many attempts; wait {seconds} s."},
            429,
        )
        page.headers["Retry-After"] = str(seconds)
        return page
    try:
        principal = await run_in_threadpool(check_password, get_engine(request), email, password)
    except AuthError:
        limiter.fail(keys)
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": "Wrong email or password."},
            401,
        )
    limiter.succeed(keys)
    if principal.scope is TokenScope.COACH:  # the coach loop: a coach signs in to the inbox
        next = next if _safe_next(next).startswith("/inbox") else "/inbox"
    elif not principal.is_staff:
        return render(
            request,
            "login.html",
            {"next": "/", "error": "This dashboard is for platform staff only."},
            403,
        )
    sign_in(request, principal)
    done = RedirectResponse(_safe_next(next), status_code=303)
    done.set_cookie(
        DEVICE_COOKIE,
        _devices(request).dumps(principal.name),
        max_age=DEVICE_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
        path="/login",
    )
    return done


@router.post("/logout")
async def logout(request: Request) -> Response:
    if await csrf_ok(request):
        sign_out(request)
    return RedirectResponse("/login", status_code=303)
