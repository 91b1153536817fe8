"""Guard-rail figures read by the alerts and the stage page (real SQLite and PostgreSQL)."""

from __future__ import annotations

from voicewatch import alerts, metrics
from voicewatch.clock import now_ms
from voicewatch.events import log_events
from voicewatch.pipeline import clubs
from voicewatch.pipeline.budgets import add_spend, set_budget
from voicewatch.store.tables import PLATFORM


def test_budget_alerts_name_the_organization_and_the_platform(engine) -> None:
    now = now_ms()
    clubs.upsert_organization(engine, "org_clg", "Clonmore GAA")
    set_budget(engine, "org_clg", 1.0, now_ms=now)
    set_budget(engine, PLATFORM, 2.0, now_ms=now)
    add_spend(engine, "org_clg", 1.5, now, None)
    add_spend(engine, PLATFORM, 1.7, now, None)
    alerts.check_health(engine, now, notifier=None)
    messages = sorted(a["message"] for a in alerts.list_alerts(engine, kind="budget"))
    assert messages[0].startswith("Clonmore GAA exceeded its budget")
    assert messages[1].startswith("The platform reached its budget alert threshold")
    assert not any("org_clg" in m for m in messages)


def test_the_error_breakdown_counts_each_failed_note_once(engine) -> None:
    now = now_ms()
    base = {"organization_id": "org_clg", "pipeline_stage": "claims_extraction"}
    batch = []
    for i in range(
        3
    ):  # a pipeline note says it failed twice: its stage's event and artifact_failed
        for kind in ("claims_extraction_failed", "artifact_failed"):
            batch.append(
                {
                    **base,
                    "event_id": f"e{i}.{kind}",
                    "event_type": kind,
                    "artifact_id": f"art_{i}",
                    "error_code": "rate_limited",
                    "error_message": "limited past the horizon",
                    "timestamp": now - 1000,
                }
            )
    batch.append(  # another service's failure without an artifact counts alone
        {
            **base,
            "event_id": "x",
            "event_type": "claims_extraction_failed",
            "error_code": "rate_limited",
            "timestamp": now - 1000,
        }
    )
    assert log_events(engine, batch).accepted == 7
    (row,) = metrics.error_breakdown(engine, "claims_extraction", now)
    assert row["error_code"] == "rate_limited" and row["count"] == 4


def test_a_budget_spend_is_the_cost_cards_figure(engine) -> None:
    from voicewatch.dashboard.overview import status_cards
    from voicewatch.metrics import guards

    now = now_ms()
    clubs.upsert_organization(engine, "org_clg", "Clonmore GAA")
    set_budget(engine, PLATFORM, 5.0, now_ms=now)
    set_budget(engine, "org_clg", 5.0, now_ms=now)
    costs = [0.0123, 0.0456, 0.0789]
    log_events(
        engine,
        [
            {
                "event_id": f"c{i}",
                "event_type": "transcription_completed",
                "artifact_id": f"art_{i}",
                "organization_id": "org_clg" if i else "org_other",
                "pipeline_stage": "transcription",
                "duration_ms": 10,
                "metadata": {"ai_cost": cost, "ai_model": "whisper-1"},
                "timestamp": now - 5000,
            }
            for i, cost in enumerate(costs)
        ],
    )
    platform, clg = guards.budgets(engine, now)
    assert platform["organization_id"] == "platform"
    assert platform["spend_usd"] == status_cards(engine, now)["cost_today"] == round(sum(costs), 6)
    assert clg["spend_usd"] == round(costs[1] + costs[2], 6)


def test_the_estimated_cost_model_prices_each_offline_model_as_its_hosted_twin() -> None:
    from voicewatch.pipeline import costs

    table = costs.estimated_prices(0.006, 0.00015, 0.0006)
    for local, hosted in costs.STANDS_IN_FOR.items():
        assert table[local] == costs.PRICES[hosted], local
        assert costs.PRICES[local] == costs.ModelPrice()  # free unless estimated
    one_minute = costs.cost_of("faster-whisper-base.en", audio_seconds=60, prices=table)
    assert one_minute == costs.cost_of("whisper-1", audio_seconds=60) == 0.006
    free = costs.estimated_prices(0, 0, 0)
    assert costs.cost_of("rules", 1000, 1000, prices=free) == 0
