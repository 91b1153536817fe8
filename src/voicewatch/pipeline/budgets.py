"""Daily AI budgets per organization (UTC days).

Why: one club's traffic (or a loop) must not run up an unbounded provider
bill. Staff give an organization a daily budget in USD; ``check_budget`` runs
before each AI call and raises ``BudgetExceeded`` once today's spend has
reached the budget, so the stage fails with that reason instead of calling the
provider. ``add_spend`` runs after each paid call with its cost.

The row in ``org_cost_budgets`` keeps today's running spend (``current_day`` is
the UTC date it belongs to). The first spend of a new UTC day starts the
count again from zero, so the day "rolls over" at UTC midnight without a
scheduled job. ``budget_threshold_reached`` is emitted the first time a day's
spend reaches ``alert_threshold * budget`` and ``budget_exceeded`` the first
time it reaches the budget: at most once each per organization per day, even
with several workers, because the flags that say "already told" change under
the same row lock as the spend. Both events carry today's spend in
``metadata.ai_cost``.

No budget row means no limit (and no spend is kept). A budget of 0 stops every
paid call. Spend is rounded to nine decimals after each addition, so ten
calls of $0.10 do reach a $1.00 budget despite binary floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, select, update

from voicewatch import clock
from voicewatch.pipeline.costs import usage_cost
from voicewatch.pipeline.guard import Emit, insert_if_absent, notify, usd
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import org_cost_budgets as budgets_t

DEFAULT_ALERT_THRESHOLD = 0.8
_DECIMALS = 9


class BudgetExceeded(RuntimeError):
    """Today's AI spend of an organization has reached its daily budget."""

    def __init__(self, organization_id: str, daily_budget_usd: float, spend_usd: float) -> None:
        self.organization_id = organization_id
        self.daily_budget_usd = daily_budget_usd
        self.spend_usd = spend_usd
        super().__init__(
            f"daily AI budget of {usd(daily_budget_usd)} for {organization_id} is spent"
            f" ({usd(spend_usd)}); AI calls resume at 00:00 UTC"
        )


@dataclass(frozen=True)
class Budget:
    """An organization's budget and where today stands against it."""

    organization_id: str
    daily_budget_usd: float
    alert_threshold: float
    day: str  # the UTC day the figures below belong to
    spend_usd: float
    threshold_notified: bool
    exceeded_notified: bool

    @property
    def exceeded(self) -> bool:
        return self.spend_usd >= self.daily_budget_usd


def utc_day(now_ms: int) -> str:
    """``YYYY-MM-DD`` of the UTC day holding ``now_ms``."""
    return clock.to_datetime(now_ms).strftime("%Y-%m-%d")


def _today(row: Row[Any], now_ms: int) -> Budget:
    """The row as seen on the UTC day of ``now_ms`` (an older day counts as nothing spent)."""
    day = utc_day(now_ms)
    current = row.current_day == day
    return Budget(
        organization_id=row.organization_id,
        daily_budget_usd=row.daily_budget_usd,
        alert_threshold=row.alert_threshold,
        day=day,
        spend_usd=row.current_daily_spend if current else 0.0,
        threshold_notified=bool(row.threshold_notified) if current else False,
        exceeded_notified=bool(row.exceeded_notified) if current else False,
    )


def get_budget(engine: Engine, organization_id: str, now_ms: int) -> Budget | None:
    """The organization's budget and today's spend; ``None`` when it has no budget."""
    with read_connection(engine) as conn:
        row = _select(conn, organization_id, lock=False)
    return _today(row, now_ms) if row is not None else None


def set_budget(
    engine: Engine,
    organization_id: str,
    daily_budget_usd: float,
    alert_threshold: float = DEFAULT_ALERT_THRESHOLD,
    *,
    now_ms: int | None = None,
) -> Budget:
    """Give an organization a daily budget (USD), or change it.

    A new budget starts from what the organization already spent today
    according to ``ai_usage_log``, so setting a budget at noon does not hand
    out a full day's allowance again. Changing a budget keeps today's spend;
    a notification already sent stays sent only while the spend is still past
    the new level, so a raised budget warns again when the spend reaches it.
    """
    budget = float(daily_budget_usd)
    threshold = float(alert_threshold)
    if not math.isfinite(budget) or budget < 0:
        raise ValueError("daily_budget_usd must be a finite amount >= 0")
    if not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise ValueError("alert_threshold must be a fraction in (0, 1]")
    now = clock.now_ms() if now_ms is None else now_ms
    day = utc_day(now)
    with write_transaction(engine) as conn:
        row = _select(conn, organization_id, lock=True)
        if row is None or row.current_day != day:
            start = clock.day_start(now)
            spend = round(usage_cost(conn, organization_id, start, now + 1), _DECIMALS)
            threshold_notified = exceeded_notified = False
        else:
            spend = row.current_daily_spend
            threshold_notified = bool(row.threshold_notified)
            exceeded_notified = bool(row.exceeded_notified)
        values = {
            "daily_budget_usd": budget,
            "alert_threshold": threshold,
            "current_day": day,
            "current_daily_spend": spend,
            # "already told" survives only while it is still true of the new level
            "threshold_notified": threshold_notified and spend >= _level(threshold, budget),
            "exceeded_notified": exceeded_notified and spend >= budget,
            "updated_at": now,
        }
        insert_if_absent(
            conn,
            budgets_t,
            {"organization_id": organization_id, **values},
            ["organization_id"],
        )
        conn.execute(
            update(budgets_t).where(budgets_t.c.organization_id == organization_id).values(**values)
        )
        row = _select(conn, organization_id, lock=False)
    assert row is not None
    return _today(row, now)


def remove_budget(engine: Engine, organization_id: str) -> bool:
    """Take an organization's budget away (no limit from now on). True if it had one."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            delete(budgets_t).where(budgets_t.c.organization_id == organization_id)
        )
    return bool(result.rowcount)


def check_budget(
    engine: Engine, organization_id: str, now_ms: int, emit: Emit | None = None
) -> bool:
    """Raise ``BudgetExceeded`` when today's spend has reached the budget.

    Returns whether the organization has a budget at all (then the call's cost
    must be added with ``add_spend``; without one nothing is kept).

    Call it before every AI call for the organization. It only reads, except
    when the budget is found exceeded and ``budget_exceeded`` was not yet
    emitted today (a budget lowered below today's spend): with ``emit`` given,
    the event is then emitted, once, before raising.
    """
    with read_connection(engine) as conn:
        row = _select(conn, organization_id, lock=False)
    if row is None:
        return False
    today = _today(row, now_ms)
    if not today.exceeded:
        return True
    if emit is not None and not today.exceeded_notified:
        add_spend(engine, organization_id, 0.0, now_ms, emit)
    raise BudgetExceeded(organization_id, today.daily_budget_usd, today.spend_usd)


def add_spend(
    engine: Engine, organization_id: str, amount: float, now_ms: int, emit: Emit | None
) -> float:
    """Add the cost of an AI call to today's spend; return today's spend (0.0 if no budget).

    Rolls the day over at UTC midnight and emits ``budget_threshold_reached``
    and ``budget_exceeded`` the first time today's spend reaches each level
    (both, in that order, when one call crosses both).
    """
    value = float(amount)
    if not math.isfinite(value) or value < 0:
        raise ValueError("amount must be a finite amount >= 0")
    day = utc_day(now_ms)
    events: list[tuple[str, str]] = []
    with write_transaction(engine) as conn:
        row = _select(conn, organization_id, lock=True)
        if row is None:
            return 0.0
        today = _today(row, now_ms)
        spend = round(today.spend_usd + value, _DECIMALS)
        budget = today.daily_budget_usd
        threshold_notified = today.threshold_notified
        exceeded_notified = today.exceeded_notified
        if not threshold_notified and spend >= _level(today.alert_threshold, budget):
            threshold_notified = True
            events.append(
                (
                    "budget_threshold_reached",
                    f"{organization_id} has spent {usd(spend)} of its daily AI budget of"
                    f" {usd(budget)} (alert at {today.alert_threshold:.0%})",
                )
            )
        if not exceeded_notified and spend >= budget:
            exceeded_notified = True
            events.append(
                (
                    "budget_exceeded",
                    str(BudgetExceeded(organization_id, budget, spend)),
                )
            )
        conn.execute(
            update(budgets_t)
            .where(budgets_t.c.organization_id == organization_id)
            .values(
                current_day=day,
                current_daily_spend=spend,
                threshold_notified=threshold_notified,
                exceeded_notified=exceeded_notified,
                updated_at=now_ms,
            )
        )
    for event_type, message in events:
        notify(
            emit,
            event_type,
            organization_id=organization_id,
            error_message=message,
            error_code=event_type,
            metadata={"ai_cost": spend},
            timestamp=now_ms,
        )
    return spend


def _level(threshold: float, budget: float) -> float:
    return round(threshold * budget, _DECIMALS)


def _select(conn: Connection, organization_id: str, *, lock: bool) -> Row[Any] | None:
    stmt = select(budgets_t).where(budgets_t.c.organization_id == organization_id)
    if lock:
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def today_of(row: Row[Any], now_ms: int) -> Budget:
    """A stored ``org_cost_budgets`` row as seen on the UTC day of ``now_ms``."""
    return _today(row, now_ms)
