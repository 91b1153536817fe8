"""Prices per model and the AI usage log (the log on SQLite and PostgreSQL)."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import Engine, select

from voicewatch.clock import DAY_MS, parse_iso_ms
from voicewatch.pipeline.costs import (
    LOCAL_MODELS,
    PRICES,
    ModelPrice,
    UnknownModel,
    cost_of,
    price_of,
    record_usage,
    usage_cost,
)
from voicewatch.store import read_connection
from voicewatch.store.tables import ai_usage_log

T0 = parse_iso_ms("2024-05-01T12:00:00Z")


# --- the price table -------------------------------------------------------------


def test_whisper_costs_six_tenths_of_a_cent_per_audio_minute() -> None:
    assert cost_of("whisper-1", audio_seconds=60) == pytest.approx(0.006)
    assert cost_of("whisper-1", audio_seconds=90) == pytest.approx(0.009)
    assert cost_of("whisper-1", audio_seconds=1) == pytest.approx(0.0001)
    assert cost_of("whisper-1", audio_seconds=0) == 0
    # a transcription model has no token price
    assert cost_of("whisper-1", input_tokens=1_000_000) == 0


def test_gpt_4o_mini_prices_input_and_output_tokens() -> None:
    assert cost_of("gpt-4o-mini", input_tokens=1_000_000) == pytest.approx(0.15)
    assert cost_of("gpt-4o-mini", output_tokens=1_000_000) == pytest.approx(0.60)
    assert cost_of("gpt-4o-mini", input_tokens=1_000, output_tokens=500) == pytest.approx(0.00045)


def test_gpt_4o_prices_input_and_output_tokens() -> None:
    assert cost_of("gpt-4o", input_tokens=1_000_000) == pytest.approx(2.50)
    assert cost_of("gpt-4o", output_tokens=1_000_000) == pytest.approx(10.00)
    assert cost_of("gpt-4o", input_tokens=2_000, output_tokens=300) == pytest.approx(0.008)


@pytest.mark.parametrize("model", ["pocketsphinx", "rules", "text"])
def test_local_models_cost_nothing(model: str) -> None:
    assert model in LOCAL_MODELS
    assert cost_of(model, input_tokens=10**6, output_tokens=10**6, audio_seconds=3600) == 0


def test_every_local_model_is_priced_at_zero() -> None:
    for model in LOCAL_MODELS:
        assert PRICES[model] == ModelPrice()


def test_a_dated_snapshot_is_priced_as_its_base_model() -> None:
    assert price_of("gpt-4o-mini-2024-07-18") == PRICES["gpt-4o-mini"]
    assert cost_of("gpt-4o-2024-08-06", output_tokens=1_000_000) == pytest.approx(10.0)


def test_an_unknown_model_is_an_error_that_names_the_known_ones() -> None:
    with pytest.raises(UnknownModel) as info:
        cost_of("claude-9", input_tokens=10)
    message = str(info.value)
    assert "no price for AI model 'claude-9'" in message
    assert "gpt-4o-mini" in message and "whisper-1" in message
    assert isinstance(info.value, LookupError)


def test_another_price_table_can_be_passed() -> None:
    prices = {"my-model": ModelPrice(input_per_million=1.0, audio_per_minute=0.01)}
    assert cost_of("my-model", input_tokens=500_000, audio_seconds=30, prices=prices) == (
        pytest.approx(0.505)
    )
    with pytest.raises(UnknownModel):
        cost_of("gpt-4o", prices=prices)


@pytest.mark.parametrize(
    "kwargs",
    [{"input_tokens": -1}, {"output_tokens": -5}, {"audio_seconds": math.nan}],
)
def test_negative_or_non_finite_quantities_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="finite number >= 0"):
        cost_of("gpt-4o", **kwargs)  # type: ignore[arg-type]


# --- the usage log ----------------------------------------------------------------------


def _rows(engine: Engine) -> list[dict[str, object]]:
    with read_connection(engine) as conn:
        result = conn.execute(select(ai_usage_log).order_by(ai_usage_log.c.id))
        return [dict(r._mapping) for r in result]


def test_record_usage_stores_the_call_and_returns_its_cost(engine: Engine) -> None:
    cost = record_usage(
        engine,
        "org_1",
        "art_1",
        "claims_extraction",
        "gpt-4o-mini",
        input_tokens=1_200,
        output_tokens=300,
        now_ms=T0,
    )
    assert cost == pytest.approx(0.00036)
    audio = record_usage(
        engine, "org_1", "art_1", "transcription", "whisper-1", audio_seconds=42.5, now_ms=T0 + 1
    )
    assert audio == pytest.approx(42.5 / 60 * 0.006)
    rows = _rows(engine)
    assert len(rows) == 2
    first = rows[0]
    assert first["organization_id"] == "org_1"
    assert first["artifact_id"] == "art_1"
    assert first["operation"] == "claims_extraction"
    assert first["model"] == "gpt-4o-mini"
    assert (first["input_tokens"], first["output_tokens"]) == (1_200, 300)
    assert first["cost_usd"] == pytest.approx(0.00036)
    assert first["created_at"] == T0
    assert rows[1]["audio_seconds"] == pytest.approx(42.5)


def test_a_local_model_is_logged_at_zero_cost(engine: Engine) -> None:
    assert record_usage(engine, "org_1", None, "claims_extraction", "rules", now_ms=T0) == 0
    rows = _rows(engine)
    assert rows[0]["cost_usd"] == 0 and rows[0]["artifact_id"] is None


def test_an_unknown_model_stores_nothing(engine: Engine) -> None:
    with pytest.raises(UnknownModel):
        record_usage(engine, "org_1", "a", "transcription", "mystery", now_ms=T0)
    assert _rows(engine) == []


def test_usage_cost_sums_one_organization_over_a_half_open_period(engine: Engine) -> None:
    for at in (T0, T0 + 1000, T0 + DAY_MS):
        record_usage(engine, "org_1", "a", "x", "gpt-4o", output_tokens=100_000, now_ms=at)
    record_usage(engine, "org_2", "b", "x", "gpt-4o", output_tokens=100_000, now_ms=T0)
    assert usage_cost(engine, "org_1", T0, T0 + DAY_MS) == pytest.approx(2.0)
    assert usage_cost(engine, "org_1", T0, T0 + DAY_MS + 1) == pytest.approx(3.0)
    assert usage_cost(engine, "org_1", T0 + 1, T0 + 1000) == 0
    assert usage_cost(engine, "org_3", 0, T0 * 2) == 0
