"""``/guards``: the guard-rails page, and its circuit "reset" button (a form, CSRF-checked).

The page renders ``dashboard.guards``; the button posts to
``/guards/ai-services/{service}/reset``, which checks the session's CSRF token,
calls ``guardrails.reset_breaker`` (audited, emits ``circuit_breaker_closed``
naming who) and redirects back to the page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from voicewatch import guardrails
from voicewatch.auth import Principal
from voicewatch.clock import now_ms
from voicewatch.dashboard import guards as guards_view
from voicewatch.web.deps import get_engine, get_settings
from voicewatch.web.errors import ApiError
from voicewatch.web.page_deps import staff_page
from voicewatch.web.security import csrf_ok
from voicewatch.web.templating import render

router = APIRouter(include_in_schema=False)

Staff = Annotated[Principal, Depends(staff_page)]
Db = Annotated[Engine, Depends(get_engine)]


@router.get("/guards", response_class=HTMLResponse)
async def guards_page(request: Request, _staff: Staff, engine: Db) -> Response:
    settings = get_settings(request)
    context = await run_in_threadpool(guards_view.guards_page, engine, settings)
    context["reset_done"] = request.query_params.get("reset", "")
    return render(request, "guards.html", context)


@router.post("/guards/ai-services/{service}/reset")
async def reset_button(request: Request, service: str, staff: Staff, engine: Db) -> Response:
    if staff.via == "session" and not await csrf_ok(request):
        raise ApiError(403, "missing or wrong CSRF token")
    settings = get_settings(request)
    try:
        await run_in_threadpool(
            lambda: guardrails.reset_breaker(
                engine, settings, service[:64], actor=staff.name, now=now_ms()
            )
        )
    except LookupError as exc:
        raise ApiError(404, str(exc)) from exc
    return RedirectResponse(f"/guards?reset={service[:64]}#services", status_code=303)
