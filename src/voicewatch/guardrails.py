"""Staff actions on the guard rails: set a budget, set a rate limit, reset a circuit.

Why here and not in the routes: the CLI and the API make the same changes, and
each must be validated and written to the audit log (who, what, from what to
what) in one place. Raises ``GuardInputError`` (a clear one-line reason) for bad
input and ``LookupError`` for an unknown organization or service.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from sqlalchemy import Engine

from voicewatch import audit
from voicewatch.config import Settings
from voicewatch.events import log_events
from voicewatch.metrics import guards as guard_figures
from voicewatch.pipeline import breaker, budgets, clubs, ratelimit
from voicewatch.pipeline.providers import AI_SERVICES
from voicewatch.store.tables import PLATFORM


class GuardInputError(ValueError):
    """A guard-rail setting that cannot be applied (says why in one line)."""


def _budget_view(b: budgets.Budget | None) -> dict[str, Any] | None:
    if b is None:
        return None
    return {"daily_budget_usd": b.daily_budget_usd, "warn_at": b.alert_threshold}


def _known_org(engine: Engine, name: str) -> str:
    scope = guard_figures.scope_of(name)
    if scope != PLATFORM and not clubs.organization_exists(engine, scope):
        raise LookupError(f"unknown organization: {name}")
    return scope


def set_budget(
    engine: Engine,
    organization: str,
    daily_usd: float,
    warn_at: float,
    *,
    actor: str,
    now: int,
) -> dict[str, Any]:
    """Give an organization (or ``"platform"``) a daily budget in USD; audited."""
    if not math.isfinite(daily_usd) or daily_usd < 0:
        raise GuardInputError("daily_usd must be a finite amount >= 0")
    if not (math.isfinite(warn_at) and 0 < warn_at <= 1):
        raise GuardInputError("warn_at must be a fraction in (0, 1], e.g. 0.8")
    scope = _known_org(engine, organization)
    before = budgets.get_budget(engine, scope, now)
    after = budgets.set_budget(engine, scope, daily_usd, warn_at, now_ms=now)
    audit.record(
        engine,
        actor=actor,
        action="budget.set",
        target=guard_figures.name_of(scope),
        before=_budget_view(before),
        after=_budget_view(after),
        at_ms=now,
    )
    return guard_figures.budgets(engine, now, only=scope)[0]


def set_rate_limit(
    engine: Engine,
    organization: str,
    service: str,
    per_minute: int | None,
    *,
    actor: str,
    now: int,
) -> dict[str, Any]:
    """Override the per-minute AI-call limit of (organization, service); None removes it.

    ``organization`` and ``service`` may be ``"*"`` (every organization / service).
    """
    if organization != ratelimit.ANY:
        _known_org(engine, organization)
        if organization == guard_figures.PLATFORM_NAME:
            raise GuardInputError("rate limits are per organization: use '*' for all of them")
    if service != ratelimit.ANY and service not in AI_SERVICES:
        raise GuardInputError(f"service must be '*' or one of: {', '.join(sorted(AI_SERVICES))}")
    if per_minute is not None and not 0 <= per_minute <= 1_000_000:
        raise GuardInputError("per_minute must be between 0 and 1000000")
    before = ratelimit.get_override(engine, organization, service)
    if per_minute is None:
        ratelimit.remove_override(engine, organization, service)
    else:
        ratelimit.set_override(engine, organization, service, per_minute, now)
    audit.record(
        engine,
        actor=actor,
        action="rate_limit.set",
        target=f"{organization}/{service}",
        before=None if before is None else {"per_minute": before},
        after=None if per_minute is None else {"per_minute": per_minute},
        at_ms=now,
    )
    return {"organization_id": organization, "service": service, "per_minute": per_minute}


def reset_breaker(
    engine: Engine, settings: Settings, service: str, *, actor: str, now: int
) -> dict[str, Any]:
    """Force a service's circuit closed; audited, and ``circuit_breaker_closed`` names who."""
    if guard_figures.service(engine, settings, service) is None:
        raise LookupError(f"unknown AI service: {service}")

    def emit(event_type: str, **fields: Any) -> None:
        log_events(
            engine,
            [
                {
                    "event_id": f"reset.{service}.{now}.{uuid.uuid4().hex[:8]}",
                    "event_type": event_type,
                    "pipeline_stage": AI_SERVICES.get(service),
                    **fields,
                }
            ],
        )

    before, after = breaker.reset(engine, service, actor, now, emit)
    audit.record(
        engine,
        actor=actor,
        action="breaker.reset",
        target=f"service:{service}",
        before=None if before is None else {"state": before.state.value},
        after=None if after is None else {"state": after.state.value},
        at_ms=now,
    )
    row = guard_figures.service(engine, settings, service)
    assert row is not None
    return {**row, "reset": before is not None and before.state is not breaker.BreakerState.CLOSED}
