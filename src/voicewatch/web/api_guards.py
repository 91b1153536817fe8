"""``/api/v1/budgets``, ``/rate-limits``, ``/ai-services``, ``/audit``: the guard rails.

Staff only; a change made with a session cookie needs its CSRF token
(``require_staff``). Figures come from ``guard_figures``, changes go through
``guardrails`` (which writes the audit log); nothing else happens here.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Engine

from voicewatch import audit, guardrails, model
from voicewatch.auth import Principal
from voicewatch.clock import now_ms
from voicewatch.metrics import guards as guard_figures
from voicewatch.web.body import parse_json, read_limited, require_json_content_type
from voicewatch.web.deps import get_engine, get_settings, require_staff
from voicewatch.web.errors import ApiError
from voicewatch.web.responses import COMMON_ERRORS, WRITE_ERRORS, error_responses

M = TypeVar("M", bound=BaseModel)
router = APIRouter(prefix="/api/v1", tags=["guard rails"], responses=COMMON_ERRORS)
_BODY_MAX_BYTES = 4 * 1024
_WRITE = {**error_responses(404, 413, 415, 422), **WRITE_ERRORS}
Org = Annotated[str, Path(max_length=model.ID_MAX_LEN)]
Service = Annotated[str, Path(max_length=64)]


class BudgetRequest(BaseModel):
    """``PUT /api/v1/budgets/{org}``: the daily budget (USD) and the warning share."""

    daily_usd: float = Field(ge=0, allow_inf_nan=False)
    warn_at: float = Field(default=0.8, gt=0, le=1, allow_inf_nan=False)


class RateLimitRequest(BaseModel):
    """``PUT /api/v1/rate-limits/{org}/{service}``: calls a minute; null removes the override."""

    per_minute: int | None = Field(ge=0, le=1_000_000)


async def _body(request: Request, schema: type[M]) -> M:
    require_json_content_type(request)
    payload = parse_json(await read_limited(request, _BODY_MAX_BYTES))
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        problems = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(problems) from exc


async def _act(action: Any) -> Any:
    try:
        return await run_in_threadpool(action)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from exc
    except guardrails.GuardInputError as exc:
        raise ApiError(422, str(exc)) from exc


@router.get("/budgets", summary="Every daily AI budget with today's spend and state")
def list_budgets(
    _principal: Annotated[Principal, Depends(require_staff)],
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    now = now_ms()
    return {
        "as_of": now,
        "items": guard_figures.budgets(engine, now),
        "cost_model": guard_figures.cost_model(get_settings(request)),
    }


@router.get("/budgets/{organization}", summary="One budget", responses=error_responses(404))
def get_budget(
    organization: Org,
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    rows = guard_figures.budgets(engine, now_ms(), only=guard_figures.scope_of(organization))
    if not rows:
        raise ApiError(404, f"no budget for {organization}")
    return rows[0]


@router.put("/budgets/{organization}", summary="Set a daily AI budget (audited)", responses=_WRITE)
async def put_budget(
    organization: Org,
    request: Request,
    principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    body = await _body(request, BudgetRequest)
    result: dict[str, Any] = await _act(
        lambda: guardrails.set_budget(
            engine, organization, body.daily_usd, body.warn_at, actor=principal.name, now=now_ms()
        )
    )
    return result


@router.get(
    "/rate-limits",
    summary="Default, overrides, and each window's current count (at=epoch ms: another time)",
    responses=error_responses(422),
)
def list_rate_limits(
    _principal: Annotated[Principal, Depends(require_staff)],
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    at: Annotated[int | None, Query(ge=0, le=2**53)] = None,
) -> dict[str, Any]:
    return guard_figures.rate_limits(engine, get_settings(request), now_ms() if at is None else at)


@router.put(
    "/rate-limits/{organization}/{service}",
    summary="Override an AI-call rate limit ('*' for all organizations or services; audited)",
    responses=_WRITE,
)
async def put_rate_limit(
    organization: Org,
    service: Service,
    request: Request,
    principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    body = await _body(request, RateLimitRequest)
    result: dict[str, Any] = await _act(
        lambda: guardrails.set_rate_limit(
            engine, organization, service, body.per_minute, actor=principal.name, now=now_ms()
        )
    )
    return result


@router.get("/ai-services", summary="Each AI service's circuit breaker")
def list_services(
    _principal: Annotated[Principal, Depends(require_staff)],
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    return {"items": guard_figures.services(engine, get_settings(request))}


@router.get("/ai-services/{service}", summary="One circuit", responses=error_responses(404))
def get_service(
    service: Service,
    _principal: Annotated[Principal, Depends(require_staff)],
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    row = guard_figures.service(engine, get_settings(request), service)
    if row is None:
        raise ApiError(404, f"unknown AI service: {service}")
    recent = audit.entries(engine, target=f"service:{service}", limit=10)
    return {**row, "resets": recent}


@router.post(
    "/ai-services/{service}/reset",
    summary="Force a circuit closed (audited; emits circuit_breaker_closed naming who)",
    responses={**error_responses(404), **WRITE_ERRORS},
)
async def reset_service(
    service: Service,
    request: Request,
    principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
) -> dict[str, Any]:
    settings = get_settings(request)
    result: dict[str, Any] = await _act(
        lambda: guardrails.reset_breaker(
            engine, settings, service, actor=principal.name, now=now_ms()
        )
    )
    return result


@router.get("/audit", summary="Audit log of staff changes, newest first")
def list_audit(
    _principal: Annotated[Principal, Depends(require_staff)],
    engine: Annotated[Engine, Depends(get_engine)],
    target: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return {"items": audit.entries(engine, target=target, limit=limit)}
