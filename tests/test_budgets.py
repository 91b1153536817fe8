"""Daily AI budgets per organization, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from guards import Recorder, run_two
from voicewatch.clock import parse_iso_ms
from voicewatch.pipeline.budgets import (
    BudgetExceeded,
    add_spend,
    check_budget,
    get_budget,
    remove_budget,
    set_budget,
    utc_day,
)
from voicewatch.pipeline.costs import record_usage
from voicewatch.store import make_engine

T0 = parse_iso_ms("2024-05-01T12:00:00Z")
LAST_MS_OF_DAY = parse_iso_ms("2024-05-01T23:59:59.999Z")
MIDNIGHT = parse_iso_ms("2024-05-02T00:00:00Z")
ORG = "org_x"


def test_an_organization_without_a_budget_is_unlimited(engine: Engine, recorded: Recorder) -> None:
    assert get_budget(engine, ORG, T0) is None
    check_budget(engine, ORG, T0, recorded)
    assert add_spend(engine, ORG, 1_000.0, T0, recorded) == 0.0
    check_budget(engine, ORG, T0, recorded)
    assert recorded.events == []


def test_set_budget_stores_and_changes_a_budget(engine: Engine) -> None:
    budget = set_budget(engine, ORG, 1.0, now_ms=T0)
    assert budget.daily_budget_usd == 1.0 and budget.alert_threshold == 0.8
    assert budget.day == "2024-05-01" and budget.spend_usd == 0
    set_budget(engine, ORG, 2.5, 0.5, now_ms=T0 + 1)
    found = get_budget(engine, ORG, T0 + 2)
    assert found is not None
    assert (found.daily_budget_usd, found.alert_threshold) == (2.5, 0.5)
    assert remove_budget(engine, ORG)
    assert get_budget(engine, ORG, T0) is None
    assert not remove_budget(engine, ORG)


@pytest.mark.parametrize(
    ("amount", "threshold"), [(-1.0, 0.8), (float("inf"), 0.8), (1.0, 0.0), (1.0, 1.5)]
)
def test_bad_budgets_are_refused(engine: Engine, amount: float, threshold: float) -> None:
    with pytest.raises(ValueError):
        set_budget(engine, ORG, amount, threshold, now_ms=T0)


def test_threshold_then_exceeded_each_emitted_once(engine: Engine, recorded: Recorder) -> None:
    set_budget(engine, ORG, 1.0, 0.8, now_ms=T0)
    assert add_spend(engine, ORG, 0.5, T0 + 1, recorded) == pytest.approx(0.5)
    assert recorded.events == []
    assert add_spend(engine, ORG, 0.3, T0 + 2, recorded) == pytest.approx(0.8)  # reaches 80%
    assert recorded.types() == ["budget_threshold_reached"]
    fields = recorded.events[0][1]
    assert fields["organization_id"] == ORG
    assert fields["metadata"] == {"ai_cost": pytest.approx(0.8)}
    assert fields["timestamp"] == T0 + 2
    add_spend(engine, ORG, 0.1, T0 + 3, recorded)
    assert recorded.types() == ["budget_threshold_reached"]  # not again
    check_budget(engine, ORG, T0 + 3)  # $0.90 of $1.00: still allowed
    add_spend(engine, ORG, 0.1, T0 + 4, recorded)  # reaches $1.00
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"]
    exceeded = recorded.events[1][1]
    assert exceeded["metadata"] == {"ai_cost": pytest.approx(1.0)}
    assert exceeded["organization_id"] == ORG
    assert "daily AI budget of $1.00 for org_x is spent ($1.00)" in exceeded["error_message"]
    add_spend(engine, ORG, 0.02, T0 + 5, recorded)
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"]  # not again


def test_check_budget_stops_calls_once_the_budget_is_spent(
    engine: Engine, recorded: Recorder
) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    add_spend(engine, ORG, 1.02, T0 + 1, recorded)
    with pytest.raises(BudgetExceeded) as info:
        check_budget(engine, ORG, T0 + 2)
    assert str(info.value).startswith("daily AI budget of $1.00 for org_x is spent ($1.02)")
    assert info.value.organization_id == ORG
    assert info.value.spend_usd == pytest.approx(1.02)


def test_one_call_crossing_both_levels_emits_both_in_order(
    engine: Engine, recorded: Recorder
) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    add_spend(engine, ORG, 5.0, T0 + 1, recorded)
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"]
    assert all(f["metadata"] == {"ai_cost": 5.0} for _, f in recorded.events)


def test_ten_dimes_reach_a_dollar_despite_floating_point(
    engine: Engine, recorded: Recorder
) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    for i in range(10):
        add_spend(engine, ORG, 0.1, T0 + i, recorded)
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"]
    with pytest.raises(BudgetExceeded):
        check_budget(engine, ORG, T0 + 10)


def test_the_day_rolls_over_at_utc_midnight(engine: Engine, recorded: Recorder) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    add_spend(engine, ORG, 1.5, T0, recorded)
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"]
    # the last millisecond of the UTC day still belongs to it
    with pytest.raises(BudgetExceeded):
        check_budget(engine, ORG, LAST_MS_OF_DAY)
    assert add_spend(engine, ORG, 0.0, LAST_MS_OF_DAY, recorded) == pytest.approx(1.5)
    # midnight UTC: a fresh day, calls allowed again
    check_budget(engine, ORG, MIDNIGHT)
    today = get_budget(engine, ORG, MIDNIGHT)
    assert today is not None and today.day == "2024-05-02" and today.spend_usd == 0
    assert add_spend(engine, ORG, 0.25, MIDNIGHT, recorded) == pytest.approx(0.25)
    assert len(recorded.events) == 2
    # the new day's recorded.events fire again, once each
    add_spend(engine, ORG, 0.6, MIDNIGHT + 1, recorded)
    add_spend(engine, ORG, 0.2, MIDNIGHT + 2, recorded)
    add_spend(engine, ORG, 0.2, MIDNIGHT + 3, recorded)
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"] * 2
    assert recorded.events[3][1]["metadata"] == {"ai_cost": pytest.approx(1.05)}


def test_utc_day_ignores_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        assert utc_day(LAST_MS_OF_DAY) == "2024-05-01"
        assert utc_day(MIDNIGHT) == "2024-05-02"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_raised_budget_warns_again_when_reached(engine: Engine, recorded: Recorder) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    add_spend(engine, ORG, 1.0, T0 + 1, recorded)
    assert len(recorded.events) == 2
    set_budget(engine, ORG, 2.0, now_ms=T0 + 2)
    budget = get_budget(engine, ORG, T0 + 2)
    assert budget is not None and budget.spend_usd == pytest.approx(1.0)  # spend kept
    check_budget(engine, ORG, T0 + 3)
    add_spend(engine, ORG, 0.6, T0 + 4, recorded)  # $1.60 = 80% of $2.00
    add_spend(engine, ORG, 0.4, T0 + 5, recorded)  # $2.00
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"] * 2


def test_a_budget_changed_while_still_exceeded_does_not_warn_again(
    engine: Engine, recorded: Recorder
) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    add_spend(engine, ORG, 1.0, T0 + 1, recorded)
    set_budget(engine, ORG, 0.5, now_ms=T0 + 2)
    add_spend(engine, ORG, 0.1, T0 + 3, recorded)
    with pytest.raises(BudgetExceeded):
        check_budget(engine, ORG, T0 + 4, recorded)
    assert len(recorded.events) == 2


def test_a_budget_lowered_below_the_spend_is_reported_once_by_check_budget(
    engine: Engine,
    recorded: Recorder,
) -> None:
    set_budget(engine, ORG, 10.0, now_ms=T0)
    add_spend(engine, ORG, 2.0, T0 + 1, recorded)
    assert recorded.events == []
    set_budget(engine, ORG, 1.0, now_ms=T0 + 2)
    for i in range(3):
        with pytest.raises(BudgetExceeded):
            check_budget(engine, ORG, T0 + 3 + i, recorded)
    assert recorded.types() == ["budget_threshold_reached", "budget_exceeded"]


def test_a_zero_budget_stops_every_paid_call(engine: Engine) -> None:
    set_budget(engine, ORG, 0.0, now_ms=T0)
    with pytest.raises(BudgetExceeded, match=r"\$0.00"):
        check_budget(engine, ORG, T0)


def test_a_new_budget_counts_what_was_already_spent_today(
    engine: Engine, recorded: Recorder
) -> None:
    yesterday = T0 - 86_400_000
    record_usage(engine, ORG, "a0", "x", "gpt-4o", output_tokens=500_000, now_ms=yesterday)
    record_usage(engine, ORG, "a1", "x", "gpt-4o", output_tokens=50_000, now_ms=T0 - 3_600_000)
    record_usage(engine, "org_other", "b", "x", "gpt-4o", output_tokens=500_000, now_ms=T0)
    budget = set_budget(engine, ORG, 1.0, now_ms=T0)
    assert budget.spend_usd == pytest.approx(0.5)  # today's $0.50, not yesterday's $5
    assert add_spend(engine, ORG, 0.1, T0 + 1, recorded) == pytest.approx(0.6)


def test_a_negative_spend_is_refused(engine: Engine) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    with pytest.raises(ValueError):
        add_spend(engine, ORG, -0.5, T0, None)


def test_a_failing_emitter_does_not_lose_the_spend(engine: Engine) -> None:
    def broken_emit(event_type: str, **fields: Any) -> None:
        raise ConnectionError("the harness is down")

    set_budget(engine, ORG, 1.0, now_ms=T0)
    assert add_spend(engine, ORG, 2.0, T0, broken_emit) == 2.0
    with pytest.raises(BudgetExceeded):
        check_budget(engine, ORG, T0)


# --- two processes at once --------------------------------------------------------------

ADDS = 20


def _spend_together(url: str, barrier: Any, results: Any) -> None:
    """Child process: add $0.05 twenty times, starting with the other process."""
    engine = make_engine(url)
    recorded = Recorder()
    barrier.wait()
    for i in range(ADDS):
        add_spend(engine, ORG, 0.05, T0 + i, recorded)
    engine.dispose()
    results.put(recorded.types())


def test_two_processes_spending_at_once_count_every_cent_and_warn_once(
    db_url: str, engine: Engine
) -> None:
    set_budget(engine, ORG, 1.0, now_ms=T0)
    emitted = [t for output in run_two(_spend_together, db_url) for t in output]
    assert sorted(emitted) == ["budget_exceeded", "budget_threshold_reached"]
    budget = get_budget(engine, ORG, T0 + ADDS)
    assert budget is not None and budget.spend_usd == pytest.approx(2 * ADDS * 0.05)
