"""A real OpenAI instrumentation (OpenLLMetry's opentelemetry-instrumentation-openai)
around the real ``openai`` client, calling our loopback fake OpenAI server inside a
traced stage: the call's usage and cost land on that artifact and in the day's costs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from openai import OpenAI
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from sqlalchemy import select

from conftest import LiveServer
from fake_openai import FakeOpenAI
from otlp_traces import traced
from voicewatch import clock, event_queries, metrics
from voicewatch.pipeline import budgets, costs
from voicewatch.store.tables import ai_usage_log


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def _usage_rows(server: LiveServer) -> list[dict[str, object]]:
    with server.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ai_usage_log))]


def test_openai_usage_in_a_traced_stage_lands_on_its_artifact(
    live_server: LiveServer, fake: FakeOpenAI
) -> None:
    now = clock.now_ms()
    budgets.set_budget(live_server.engine, "org_llm", 1.0, now_ms=now)
    client = OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    note = {"note": "Liam rolled his ankle.", "roster_names": ["Liam Walsh"]}
    with traced(live_server) as t:
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=t.provider)
        try:
            attrs = {"voicewatch.artifact_id": "art_llm", "voicewatch.organization_id": "org_llm"}
            with t.tracer.start_as_current_span("note", attributes=attrs):
                stage = {"voicewatch.pipeline_stage": "claims_extraction"}
                with t.tracer.start_as_current_span("extract", attributes=stage):
                    reply = client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": json.dumps(note)}],
                    )
                    assert json.loads(reply.choices[0].message.content or "")["claims"]
        finally:
            instrumentor.uninstrument()
        t.flush()
        genai = [s for s in t.spans() if s.attributes and "gen_ai.operation.name" in s.attributes]
        assert len(genai) == 1, [dict(s.attributes or {}) for s in t.spans()]
        spans = t.spans()

    expected = costs.cost_of("gpt-4o-mini", 321, 54)  # the fake's usage, our price table
    assert expected > 0
    (row,) = _usage_rows(live_server)
    assert (row["organization_id"], row["artifact_id"]) == ("org_llm", "art_llm")
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == (
        "gpt-4o-mini-2024-07-18",
        321,
        54,
    )
    assert row["cost_usd"] == pytest.approx(expected)
    timeline = event_queries.artifact_timeline(live_server.engine, "art_llm")
    claims = next(e for e in timeline if e["event_type"] == "claims_extracted")
    assert claims["metadata"]["ai_cost"] == pytest.approx(expected)
    assert claims["metadata"]["ai_model"] == "gpt-4o-mini-2024-07-18"
    day = metrics.realtime(live_server.engine, now=clock.now_ms())
    assert day["total_ai_cost"] == pytest.approx(expected, abs=1e-6)
    start = clock.day_start(now)
    assert costs.usage_cost(live_server.engine, "org_llm", start, start + 86_400_000) == (
        pytest.approx(expected)
    )
    spent = budgets.get_budget(live_server.engine, "org_llm", now_ms=clock.now_ms())
    assert spent is not None and spent.spend_usd == pytest.approx(expected)

    # the exporter's retry records the call once
    with traced(live_server) as again:
        again.export_again(spans)
    assert len(_usage_rows(live_server)) == 1
    spent = budgets.get_budget(live_server.engine, "org_llm", now_ms=clock.now_ms())
    assert spent is not None and spent.spend_usd == pytest.approx(expected)
