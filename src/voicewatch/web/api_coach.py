"""``/api/v1/coach``: a coach's inbox for the coach's app (pending drafts, waiting names).

Who may call (``_actor``): a coach token or session, for that coach's items
only; staff (token or session), for any coach's, recorded as acting on behalf.
Ingest tokens get 403. Another coach's item answers 404, exactly as an item that
does not exist, so a coach cannot learn that it exists. Every change made with
a session carries its CSRF token (``deps._check_csrf``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from voicewatch import model
from voicewatch.auth import Principal
from voicewatch.clock import now_ms
from voicewatch.coaching.inbox import auto_applied, pending_drafts, waiting_names
from voicewatch.model import TokenScope
from voicewatch.pipeline.facade import (
    Actor,
    DecisionError,
    confirm_draft,
    reject_draft,
    resolve_waiting_name,
    undo_auto_apply,
)
from voicewatch.web.body import parse_json, read_limited, require_json_content_type
from voicewatch.web.deps import _check_csrf, authenticated, get_engine, get_settings
from voicewatch.web.errors import ApiError
from voicewatch.web.pipeline_context import pipeline_context
from voicewatch.web.responses import COMMON_ERRORS, WRITE_ERRORS, error_responses
from voicewatch.web.write_gate import write_gate

router = APIRouter(prefix="/api/v1/coach", tags=["coach"], responses=COMMON_ERRORS)

#: A decision body is a short JSON object; the edited text is at most 10,000 characters.
DECISION_BODY_MAX_BYTES = 64 * 1024
CoachFilter = Annotated[str | None, Query(max_length=model.ID_MAX_LEN)]


async def _actor(request: Request) -> Actor:
    """The coach asking, or staff acting on behalf; 403 for anyone else."""
    principal: Principal = authenticated(request)
    if principal.scope is TokenScope.COACH and principal.coach_user_id:
        actor = Actor.coach(principal.coach_user_id)
    elif principal.is_staff:
        actor = Actor.staff(principal.name)
    else:
        raise ApiError(403, "coaches and platform staff only")
    await _check_csrf(request, principal)
    return actor


ActorDep = Annotated[Actor, Depends(_actor)]


def _scope(actor: Actor, coach_user_id: str | None) -> str | None:
    """Whose items to list: a coach's own (a filter for another coach finds nothing)."""
    if actor.coach_user_id is None:
        return coach_user_id or None
    if coach_user_id and coach_user_id != actor.coach_user_id:
        return ""  # never a user id: an empty list, as for a coach with none
    return actor.coach_user_id


@router.get("/drafts", summary="Pending drafts, oldest first")
def list_drafts(
    request: Request,
    actor: ActorDep,
    coach_user_id: CoachFilter = None,
    organization_id: CoachFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    items = pending_drafts(
        get_engine(request),
        _scope(actor, coach_user_id),
        organization_id=organization_id,
        limit=limit,
    )
    return {"items": items}


@router.get(
    "/applied",
    summary="Drafts applied without asking that may still be undone, newest first",
)
def list_applied(
    request: Request,
    actor: ActorDep,
    coach_user_id: CoachFilter = None,
    organization_id: CoachFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    window_ms = get_settings(request).undo_window_minutes * 60_000
    items = auto_applied(
        get_engine(request),
        _scope(actor, coach_user_id),
        since=now_ms() - window_ms,
        organization_id=organization_id,
        limit=limit,
    )
    for item in items:
        item["undo_until"] = int(item["applied_at"]) + window_ms
    return {"items": items}


@router.get("/names", summary="Names waiting for a person, oldest first")
def list_names(
    request: Request,
    actor: ActorDep,
    coach_user_id: CoachFilter = None,
    organization_id: CoachFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    items = waiting_names(
        get_engine(request),
        _scope(actor, coach_user_id),
        organization_id=organization_id,
        limit=limit,
    )
    return {"items": items}


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object of a decision (an empty body is ``{}``), with only known keys."""
    raw = await read_limited(request, DECISION_BODY_MAX_BYTES)
    if not raw.strip():
        return {}
    require_json_content_type(request)
    payload = parse_json(raw)
    if not isinstance(payload, dict):
        raise ApiError(422, "the body must be a JSON object")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise ApiError(422, f"unknown field: {unknown[0][:64]}")
    for key, value in payload.items():
        if value is not None and not isinstance(value, str):
            raise ApiError(422, f"{key} must be a string or null")
    return payload


async def _decide(request: Request, work: Any) -> Any:
    pipeline = await run_in_threadpool(pipeline_context, request)
    gate = write_gate(request)
    try:
        return await run_in_threadpool(lambda: gate.run(lambda: work(pipeline), "a decision"))
    except DecisionError as exc:
        raise ApiError(exc.status_code, str(exc)) from exc


_DECIDE = {**error_responses(400, 404, 409, 413, 415, 422), **WRITE_ERRORS}


@router.post("/drafts/{draft_id}/confirm", summary="Confirm a draft", responses=_DECIDE)
async def confirm(request: Request, draft_id: str, actor: ActorDep) -> dict[str, Any]:
    body = await _body(request, {"text"})
    insight = await _decide(
        request,
        lambda ctx: confirm_draft(ctx, draft_id[: model.ID_MAX_LEN], actor, text=body.get("text")),
    )
    return {"insight": insight}


@router.post("/drafts/{draft_id}/reject", summary="Reject a draft", responses=_DECIDE)
async def reject(request: Request, draft_id: str, actor: ActorDep) -> dict[str, Any]:
    body = await _body(request, {"reason"})
    return dict(
        await _decide(
            request,
            lambda ctx: reject_draft(
                ctx, draft_id[: model.ID_MAX_LEN], actor, reason=body.get("reason")
            ),
        )
    )


@router.post(
    "/drafts/{draft_id}/undo",
    summary="Undo an auto-applied draft within the undo window (back to pending)",
    responses=_DECIDE,
)
async def undo(request: Request, draft_id: str, actor: ActorDep) -> dict[str, Any]:
    await _body(request, set())
    window_ms = get_settings(request).undo_window_minutes * 60_000
    return dict(
        await _decide(
            request,
            lambda ctx: undo_auto_apply(
                ctx, draft_id[: model.ID_MAX_LEN], actor, window_ms=window_ms
            ),
        )
    )


@router.post(
    "/names/{resolution_id}/resolve",
    summary="Resolve a waiting name: a roster player, or null for not a player",
    responses=_DECIDE,
)
async def resolve(request: Request, resolution_id: str, actor: ActorDep) -> dict[str, Any]:
    body = await _body(request, {"entity_id"})
    if "entity_id" not in body:
        raise ApiError(422, "send entity_id: a roster player's id, or null for not a player")
    outcome = await _decide(
        request,
        lambda ctx: resolve_waiting_name(
            ctx, resolution_id[: model.ID_MAX_LEN], actor, entity_id=body["entity_id"]
        ),
    )
    resolution = outcome["resolution"]
    return {
        "resolution_id": resolution["resolution_id"],
        "status": resolution["status"],
        "resolved_entity_id": resolution["resolved_entity_id"],
        "draft": outcome["draft"],
    }
