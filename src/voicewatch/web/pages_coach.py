"""``/inbox``: the coach's plain inbox page (names waiting, drafts, what was auto-applied).

Plain HTML forms, no script: each decision is a POST carrying the session's
CSRF token, answered with a redirect back to the inbox (or the inbox again
with the error and its status: 404, 409, 422). A coach sees only their own
notes' items; staff see every coach's and act on their behalf (recorded).
An insight applied without asking shows an Undo button until its undo window
closes; a stale page's undo after that is refused (409) with the time it closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voicewatch import model
from voicewatch.auth import Principal
from voicewatch.clock import now_ms
from voicewatch.coaching.inbox import inbox_view
from voicewatch.model import TokenScope
from voicewatch.pipeline.facade import (
    Actor,
    DecisionError,
    PipelineContext,
    confirm_draft,
    reject_draft,
    resolve_waiting_name,
    undo_auto_apply,
)
from voicewatch.web.deps import current_principal, get_engine, get_settings
from voicewatch.web.errors import ApiError
from voicewatch.web.page_deps import LoginRequired, staff_page
from voicewatch.web.pipeline_context import pipeline_context
from voicewatch.web.security import csrf_ok
from voicewatch.web.templating import render
from voicewatch.web.write_gate import write_gate

router = APIRouter(include_in_schema=False)


def _viewer(request: Request) -> Actor:
    """The coach (or staff member) viewing the inbox; /login for nobody, 403 for others."""
    try:
        principal: Principal | None = current_principal(request)
    except ApiError:
        principal = None
    if principal is None:
        raise LoginRequired(request.url.path)
    if principal.scope is TokenScope.COACH and principal.coach_user_id:
        return Actor.coach(principal.coach_user_id)
    if principal.is_staff:
        return Actor.staff(principal.name)
    raise ApiError(403, "coaches and platform staff only")


Viewer = Annotated[Actor, Depends(_viewer)]


def _window_ms(request: Request) -> int:
    return get_settings(request).undo_window_minutes * 60_000


def _inbox(request: Request, actor: Actor, error: str | None, status: int) -> Response:
    view = inbox_view(
        get_engine(request),
        actor.coach_user_id,
        now=now_ms(),
        undo_window_ms=_window_ms(request),
    )
    return render(request, "inbox.html", {**view, "error": error, "actor": actor}, status)


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(request: Request, actor: Viewer) -> Response:
    return await run_in_threadpool(_inbox, request, actor, None, 200)


async def _decide(request: Request, actor: Actor, work: Any) -> Response:
    """Check CSRF, run the decision under the write gate, go back to the inbox."""
    principal = current_principal(request)  # kept on the request by ``_viewer``
    if principal is not None and principal.via == "session" and not await csrf_ok(request):
        raise ApiError(403, "missing or wrong CSRF token")  # a bearer token carries no cookie
    form = await request.form(max_files=0, max_fields=16)
    pipeline = await run_in_threadpool(pipeline_context, request)
    gate = write_gate(request)
    try:
        await run_in_threadpool(lambda: gate.run(lambda: work(pipeline, form), "a decision"))
    except DecisionError as exc:
        return await run_in_threadpool(_inbox, request, actor, str(exc), exc.status_code)
    return RedirectResponse("/inbox", status_code=303)


def _text(form: Any, key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) and value.strip() else None


@router.get("/disambiguation", response_class=HTMLResponse)
async def disambiguation(
    request: Request,
    _staff: Annotated[Principal, Depends(staff_page)],
    organization_id: Annotated[str, Query(max_length=model.ID_MAX_LEN)] = "",
) -> Response:
    """The staff's disambiguation queue, with the coaches' thresholds and their history."""
    from voicewatch.coaching.staff import queue_view

    view = await run_in_threadpool(
        queue_view, get_engine(request), organization_id=organization_id or None
    )
    return render(request, "disambiguation.html", view)


#: ``(context, actor, item id, form, undo window in ms) -> result``: one per inbox action.
Work = Callable[[PipelineContext, Actor, str, Any, int], Any]

_ACTIONS: dict[tuple[str, str], Work] = {
    ("drafts", "confirm"): lambda ctx, actor, item, form, _w: confirm_draft(
        ctx, item, actor, text=_text(form, "text")
    ),
    ("drafts", "reject"): lambda ctx, actor, item, form, _w: reject_draft(
        ctx, item, actor, reason=_text(form, "reason")
    ),
    ("drafts", "undo"): lambda ctx, actor, item, _form, window: undo_auto_apply(
        ctx, item, actor, window_ms=window
    ),
    ("names", "resolve"): lambda ctx, actor, item, form, _w: resolve_waiting_name(
        ctx, item, actor, entity_id=_text(form, "entity_id")
    ),
}


#: Each kind's id in the path (``/inbox/drafts/{draft_id}/confirm``), as in the coach API.
_ID_OF = {"drafts": "draft_id", "names": "resolution_id"}


def _route(kind: str, action: str) -> Any:
    """The POST route of one inbox action (``/inbox/{kind}/{id}/{action}``)."""
    work = _ACTIONS[(kind, action)]

    async def route(request: Request, actor: Viewer) -> Response:
        item = str(request.path_params[_ID_OF[kind]])[: model.ID_MAX_LEN]
        window = _window_ms(request)
        return await _decide(request, actor, lambda ctx, form: work(ctx, actor, item, form, window))

    route.__name__ = f"inbox_{kind}_{action}"
    return route


for _kind, _action in _ACTIONS:
    router.add_api_route(
        f"/inbox/{_kind}/{{{_ID_OF[_kind]}}}/{_action}", _route(_kind, _action), methods=["POST"]
    )
