"""The guard-rails page (``/guards``): budgets, AI-service circuits, rate limits, audit.

One read model: every figure comes from ``voicewatch.metrics.guards`` (the
same numbers as ``/api/v1/budgets``, ``/ai-services`` and ``/rate-limits``),
the recent changes from the audit log. Times are UTC epoch ms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from voicewatch import audit
from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.metrics import guards


def guards_page(engine: Engine, settings: Settings, now: int | None = None) -> dict[str, Any]:
    """Budgets with a bar each, the circuits with their reset button, the rate-limit windows."""
    now = now_ms() if now is None else now
    return {
        "as_of": now,
        "budgets": guards.budgets(engine, now),
        "cost_model": guards.cost_model(settings),
        "services": guards.services(engine, settings),
        "rate_limits": guards.rate_limits(engine, settings, now),
        "changes": audit.entries(engine, limit=15),
    }
