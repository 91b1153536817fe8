"""Guard-rail figures for staff: budgets against spend, circuits, rate-limit windows.

Why one module: the budgets panel, the AI-service card, the JSON API, the CLI
and the alerts must show the same numbers. A budget's ``spend_usd`` is today's
(UTC) ``total_ai_cost`` exactly as the overview's cost card computes it
(``metrics.realtime`` over the minutes since UTC midnight), so the panel and
the card can never disagree; the state (ok / warning / exceeded) is judged on
that figure. The pipeline enforces its own running total (``budgets.py``),
which equals it once the stage events have landed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from voicewatch import names
from voicewatch.clock import MINUTE_MS, day_start, minute_start
from voicewatch.config import Settings
from voicewatch.metrics.live import realtime
from voicewatch.pipeline import breaker, costs, ratelimit
from voicewatch.pipeline.budgets import today_of
from voicewatch.pipeline.providers import AI_SERVICES
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import org_cost_budgets as budgets_t

#: How the platform-wide budget is named in the API, the CLI and the pages.
PLATFORM_NAME = "platform"


def scope_of(name: str) -> str:
    """``"platform"`` -> the platform scope; an organization id stays itself."""
    return PLATFORM if name == PLATFORM_NAME else name


def name_of(scope: str) -> str:
    return PLATFORM_NAME if scope == PLATFORM else scope


def spend_today(engine: Engine, scope: str, now: int) -> float:
    """Today's AI cost (USD) of an organization or the platform: the cost cards' figure."""
    minutes = max(1, (minute_start(now) + MINUTE_MS - day_start(now)) // MINUTE_MS)
    figures = realtime(engine, organization_id=scope or None, now=now, window_minutes=int(minutes))
    return float(figures["total_ai_cost"])


def _state(spend: float, budget: float, warn_at: float) -> str:
    if spend >= budget:
        return "exceeded"
    if spend >= round(budget * warn_at, 9):
        return "warning"
    return "ok"


def budgets(engine: Engine, now: int, *, only: str | None = None) -> list[dict[str, Any]]:
    """Every budget (the platform's first) with today's spend, share and state."""
    query = select(budgets_t).order_by(budgets_t.c.organization_id)
    if only is not None:
        query = query.where(budgets_t.c.organization_id == only)
    with read_connection(engine) as conn:
        rows = conn.execute(query).all()
        org_names = names.organization_names(conn, [r.organization_id for r in rows])
    out = []
    for row in rows:
        today = today_of(row, now)
        spend = spend_today(engine, row.organization_id, now)
        budget = float(today.daily_budget_usd)
        out.append(
            {
                "organization_id": name_of(row.organization_id),
                "organization_name": "Platform (all organizations)"
                if row.organization_id == PLATFORM
                else org_names.get(row.organization_id, row.organization_id),
                "day": today.day,
                "daily_budget_usd": budget,
                "warn_at": float(today.alert_threshold),
                "warn_at_usd": round(budget * today.alert_threshold, 9),
                "spend_usd": spend,
                "share": spend / budget if budget > 0 else (1.0 if spend > 0 else 0.0),
                "state": _state(spend, budget, today.alert_threshold),
                "enforced_spend_usd": today.spend_usd,
                "threshold_notified": today.threshold_notified,
                "exceeded_notified": today.exceeded_notified,
            }
        )
    return out


def cost_model(settings: Settings) -> dict[str, Any]:
    """What the offline models are priced as (the figures are then estimates)."""
    local = settings.transcriber != "openai" or settings.extractor != "openai"
    return {
        "estimated": local,
        "audio_per_minute_usd": settings.offline_price_audio_minute,
        "input_per_1k_tokens_usd": settings.offline_price_input_1k_tokens,
        "output_per_1k_tokens_usd": settings.offline_price_output_1k_tokens,
        "stands_in_for": dict(costs.STANDS_IN_FOR),
    }


def _service_row(health: breaker.ServiceHealth | None, service: str, s: Settings) -> dict[str, Any]:
    if health is None:
        return {
            "service": service,
            "pipeline_stage": AI_SERVICES.get(service),
            "state": "closed",
            "status": "healthy",
            "recent_failure_count": 0,
            "since": None,
            "last_failure_at": None,
            "last_success_at": None,
            "next_probe_at": None,
            "failure_threshold": s.breaker_failures,
            "cooldown_ms": s.breaker_cooldown_ms,
        }
    next_probe = None
    if health.state is breaker.BreakerState.OPEN:
        next_probe = (health.opened_at or health.updated_at) + s.breaker_cooldown_ms
    elif health.state is breaker.BreakerState.HALF_OPEN:
        next_probe = health.updated_at + breaker.DEFAULT_PROBE_TIMEOUT_MS
    return {
        "service": service,
        "pipeline_stage": AI_SERVICES.get(service),
        "state": health.state.value,
        "status": health.status.value,
        "recent_failure_count": health.recent_failure_count,
        "since": health.opened_at
        if health.state is breaker.BreakerState.OPEN
        else health.updated_at,
        "last_failure_at": health.last_failure_at,
        "last_success_at": health.last_success_at,
        "next_probe_at": next_probe,
        "failure_threshold": s.breaker_failures,
        "cooldown_ms": s.breaker_cooldown_ms,
    }


def services(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    """Each AI service's circuit: state, recent failures, since when, next probe."""
    stored = {h.service: h for h in breaker.all_services(engine)}
    names = sorted(set(AI_SERVICES) | set(stored))
    return [_service_row(stored.get(n), n, settings) for n in names]


def service(engine: Engine, settings: Settings, name: str) -> dict[str, Any] | None:
    """One service's circuit (None for a service that is neither known nor stored)."""
    health = breaker.service_health(engine, name)
    if health is None and name not in AI_SERVICES:
        return None
    return _service_row(health, name, settings)


def rate_limits(engine: Engine, settings: Settings, now: int) -> dict[str, Any]:
    """The default, the overrides, and every AI-call window with its current count."""
    windows = []
    for w in ratelimit.windows(engine, now):
        if not (
            w["scope"].startswith(ratelimit.ORG_PREFIX)
            and w["limit_type"].startswith(ratelimit.AI_CALLS_PREFIX)
        ):
            continue
        org = w["scope"][len(ratelimit.ORG_PREFIX) :]
        svc = w["limit_type"][len(ratelimit.AI_CALLS_PREFIX) :]
        limit = ratelimit.limit_for(engine, org, svc, settings.rate_limit_per_minute)
        windows.append(
            {
                "organization_id": org,
                "service": svc,
                "limit_per_minute": limit,
                "count": w["count"],
                "refused": w["refused"],
                "window_start": w["window_start"],
                "window_end": w["window_start"] + w["window_ms"],
            }
        )
    return {
        "default_per_minute": settings.rate_limit_per_minute,
        "horizon_ms": settings.rate_limit_horizon_ms,
        "overrides": ratelimit.list_overrides(engine),
        "windows": windows,
    }


def service_states(engine: Engine) -> list[dict[str, Any]]:
    """Each AI service's circuit in brief (state, recent failures, since): the overview card."""
    stored = {h.service: h for h in breaker.all_services(engine)}
    out = []
    for name in sorted(set(AI_SERVICES) | set(stored)):
        h = stored.get(name)
        out.append(
            {
                "service": name,
                "state": h.state.value if h else "closed",
                "recent_failure_count": h.recent_failure_count if h else 0,
                "since": (h.opened_at or h.updated_at) if h else None,
            }
        )
    return out
