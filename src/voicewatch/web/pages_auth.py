"""``/login`` and ``/logout``: the only pages open to everyone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voicewatch.auth import AuthError, check_password
from voicewatch.web.deps import get_engine
from voicewatch.web.login_limit import LoginLimiter
from voicewatch.web.security import csrf_ok, sign_in, sign_out
from voicewatch.web.templating import render

router = APIRouter(include_in_schema=False)


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
    if not limiter.allow(client):
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": "Too many attempts; wait a minute."},
            429,
        )
    try:
        principal = await run_in_threadpool(check_password, get_engine(request), email, password)
    except AuthError:
        limiter.fail(client)
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": "Wrong email or password."},
            401,
        )
    if not principal.is_staff:
        return render(
            request,
            "login.html",
            {"next": "/", "error": "This dashboard is for platform staff only."},
            403,
        )
    limiter.succeed(client)
    sign_in(request, principal)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    if await csrf_ok(request):
        sign_out(request)
    return RedirectResponse("/login", status_code=303)
