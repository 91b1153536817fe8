"""``/inbox``: the coach's plain inbox page (pending drafts, names waiting for them).

Plain HTML forms, no script: each decision is a POST carrying the session's
CSRF token, answered with a redirect back to the inbox (or the inbox again
with the error and its status: 404, 409, 422). A coach sees only their own
notes' items; staff see every coach's and act on their behalf (recorded).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voicewatch import model
from voicewatch.auth import Principal
from voicewatch.coaching.inbox import pending_drafts, waiting_names
from voicewatch.model import TokenScope
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.decisions import Actor, DecisionError, confirm_draft, reject_draft
from voicewatch.pipeline.disambiguation import resolve_waiting_name
from voicewatch.web.api_artifacts import _pipeline
from voicewatch.web.deps import current_principal, get_engine
from voicewatch.web.errors import ApiError
from voicewatch.web.page_deps import LoginRequired, staff_page
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


def _inbox(request: Request, actor: Actor, error: str | None, status: int) -> Response:
    engine = get_engine(request)
    drafts = pending_drafts(engine, actor.coach_user_id)
    names = waiting_names(engine, actor.coach_user_id)
    rosters = {org: repo.roster(engine, org) for org in {n["organization_id"] for n in names}}
    for item in names:
        offered = {c["entity_id"] for c in item["candidates"]}
        item["others"] = [
            e
            for e in rosters[item["organization_id"]]
            if e.entity_type == "player" and e.entity_id not in offered
        ]
    context = {"drafts": drafts, "names": names, "error": error, "actor": actor}
    return render(request, "inbox.html", context, status)


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(request: Request, actor: Viewer) -> Response:
    return await run_in_threadpool(_inbox, request, actor, None, 200)


async def _decide(request: Request, actor: Actor, work: Any) -> Response:
    """Check CSRF, run the decision under the write gate, go back to the inbox."""
    principal = current_principal(request)  # kept on the request by ``_viewer``
    if principal is not None and principal.via == "session" and not await csrf_ok(request):
        raise ApiError(403, "missing or wrong CSRF token")  # a bearer token carries no cookie
    form = await request.form(max_files=0, max_fields=16)
    pipeline = await run_in_threadpool(_pipeline, request)
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


@router.post("/inbox/drafts/{draft_id}/confirm")
async def confirm(request: Request, draft_id: str, actor: Viewer) -> Response:
    return await _decide(
        request,
        actor,
        lambda ctx, form: confirm_draft(
            ctx, draft_id[: model.ID_MAX_LEN], actor, text=_text(form, "text")
        ),
    )


@router.post("/inbox/drafts/{draft_id}/reject")
async def reject(request: Request, draft_id: str, actor: Viewer) -> Response:
    return await _decide(
        request,
        actor,
        lambda ctx, form: reject_draft(
            ctx, draft_id[: model.ID_MAX_LEN], actor, reason=_text(form, "reason")
        ),
    )


@router.post("/inbox/names/{resolution_id}/resolve")
async def resolve(request: Request, resolution_id: str, actor: Viewer) -> Response:
    return await _decide(
        request,
        actor,
        lambda ctx, form: resolve_waiting_name(
            ctx, resolution_id[: model.ID_MAX_LEN], actor, entity_id=_text(form, "entity_id")
        ),
    )
