"""The span -> event mapping and its pieces, on plain values (the live tests are in
test_otlp_sdk.py, test_otlp_genai.py and test_otlp_hostile.py)."""

from __future__ import annotations

import gzip

import pytest

from voicewatch.otlp import genai
from voicewatch.otlp.gunzip import BadGzip, TooLarge, gunzip_limited
from voicewatch.otlp.mapping import map_spans
from voicewatch.otlp.spans import STATUS_ERROR, Span
from voicewatch.pipeline import costs

T0 = 1_796_000_000_000 * 1_000_000  # ns, 2026-12-01
MS = 1_000_000
TRACE = "ab" * 16


def span(
    span_id: str, parent: str = "", start: int = 0, end: int = 10, error: str | None = None,
    **attrs: object,
) -> Span:  # fmt: skip
    return Span(
        trace_id=TRACE,
        span_id=span_id * 8 if len(span_id) == 2 else span_id,
        parent_span_id=parent * 8 if len(parent) == 2 else parent,
        name="s",
        start_ns=T0 + start * MS,
        end_ns=T0 + end * MS,
        status_code=STATUS_ERROR if error else 0,
        exception={"exception.message": error, "exception.type": "KeyError"} if error else {},
        attributes={k.replace("__", "."): v for k, v in attrs.items()},
    )


def test_children_sent_before_their_parent_inherit_its_artifact_in_time_order() -> None:
    spans = [
        span("02", "01", 1, 4, voicewatch__pipeline_stage="transcription"),
        span("03", "02", 2, 3),  # maps to nothing
        span(
            "04",
            "01",
            5,
            9,
            voicewatch__pipeline_stage="entity_resolution",
            voicewatch__event_type="entity_needs_disambiguation",
            voicewatch__disambiguation_count=2,
        ),
        span("01", "", 0, 10, voicewatch__artifact_id="art_9", voicewatch__organization_id="o"),
    ]
    mapped = map_spans(spans)
    assert [e["event_type"] for e in mapped.events] == [
        "artifact_received",
        "transcription_started",
        "transcription_completed",
        "entity_resolution_started",
        "entity_needs_disambiguation",
        "artifact_completed",
    ]
    assert {e["artifact_id"] for e in mapped.events} == {"art_9"}
    assert {e["organization_id"] for e in mapped.events} == {"o"}
    assert mapped.events[4]["metadata"] == {"disambiguation_count": 2}
    assert mapped.events[2]["duration_ms"] == 3.0
    assert mapped.events[0]["timestamp"] == T0 // MS
    assert mapped.unmapped == 1 and not mapped.rejected
    ids = [e["event_id"] for e in mapped.events]
    assert len(set(ids)) == len(ids)
    assert ids == [e["event_id"] for e in map_spans(list(reversed(spans))).events]


def test_a_failing_stage_and_its_artifact_span_say_artifact_failed_once() -> None:
    mapped = map_spans(
        [
            span("02", "01", 1, 4, "no roster", voicewatch__pipeline_stage="draft_generation"),
            span("01", "", 0, 5, "no roster", voicewatch__artifact_id="art_f"),
        ]
    )
    failed = [e for e in mapped.events if e["event_type"] == "artifact_failed"]
    assert len(failed) == 2 and len({e["event_id"] for e in failed}) == 1
    first = failed[0]  # the stage's, which the store keeps
    assert first["pipeline_stage"] == "draft_generation"
    assert (first["error_message"], first["error_code"]) == ("no roster", "KeyError")


def test_transcription_failure_is_the_stage_event_then_artifact_failed() -> None:
    mapped = map_spans(
        [span("02", "", 0, 4, "deaf", voicewatch__pipeline_stage="transcription",
              voicewatch__artifact_id="a", voicewatch__error_code="asr_down")]
    )  # fmt: skip
    types = [e["event_type"] for e in mapped.events]
    assert types == ["transcription_started", "transcription_failed", "artifact_failed"]
    assert mapped.events[1]["error_code"] == "asr_down"


def test_ingestion_and_explicit_event_types() -> None:
    mapped = map_spans(
        [
            span(
                "01", "", 0, 2, voicewatch__pipeline_stage="ingestion", voicewatch__artifact_id="a"
            ),
            span("02", "01", 3, 4, voicewatch__event_type="draft_confirmed"),
        ]
    )
    assert [e["event_type"] for e in mapped.events] == ["artifact_received", "draft_confirmed"]
    assert mapped.events[1]["artifact_id"] == "a"


@pytest.mark.parametrize(
    "attrs",
    [
        {"gen_ai.response.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000,
         "gen_ai.usage.output_tokens": 100},
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 1000,
         "gen_ai.usage.completion_tokens": 100},
        {"llm.request.model": "gpt-4o-2024-08-06", "llm.usage.prompt_tokens": 1000,
         "llm.usage.completion_tokens": 100, "llm.request.type": "chat"},
        {"llm.model_name": "gpt-4o", "llm.token_count.prompt": 1000,
         "llm.token_count.completion": 100},
    ],
)  # fmt: skip
def test_every_spelling_of_genai_usage_is_priced_the_same(attrs: dict[str, object]) -> None:
    call = genai.call_of(attrs)
    assert (call.input_tokens, call.output_tokens) == (1000, 100)
    assert call.cost == costs.cost_of("gpt-4o", 1000, 100) == pytest.approx(0.0035)


def test_a_sent_cost_wins_and_an_unpriced_model_is_refused() -> None:
    assert (
        genai.call_of({"gen_ai.request.model": "llama-3", "gen_ai.usage.cost": 0.25}).cost == 0.25
    )
    with pytest.raises(genai.BadUsage, match="no price for AI model 'llama-3'"):
        genai.call_of({"gen_ai.request.model": "llama-3", "gen_ai.usage.input_tokens": 5})
    with pytest.raises(genai.BadUsage, match="must name its model"):
        genai.call_of({"gen_ai.usage.input_tokens": 5})
    with pytest.raises(genai.BadUsage, match="whole number"):
        genai.call_of({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": -1})


def test_genai_cost_rides_on_the_enclosing_stages_closing_event() -> None:
    usage = {"gen_ai.response.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 2000}
    mapped = map_spans(
        [
            span("03", "02", 2, 3, **{k.replace(".", "__"): v for k, v in usage.items()}),
            span("04", "02", 3, 4, **{k.replace(".", "__"): v for k, v in usage.items()}),
            span("02", "01", 1, 5, voicewatch__pipeline_stage="claims_extraction"),
            span("01", "", 0, 6, voicewatch__artifact_id="a", voicewatch__organization_id="o"),
            span("09", "", 0, 1, **{k.replace(".", "__"): v for k, v in usage.items()}),  # orphan
        ]
    )
    claims = next(e for e in mapped.events if e["event_type"] == "claims_extracted")
    one = costs.cost_of("gpt-4o-mini", 2000, 0)
    assert claims["metadata"] == {"ai_cost": pytest.approx(2 * one), "ai_model": "gpt-4o-mini"}
    assert [u.carrier_event_id for u in mapped.usages] == [claims["event_id"]] * 2
    assert {(u.organization_id, u.artifact_id) for u in mapped.usages} == {("o", "a")}
    assert mapped.orphan_calls == 1 and mapped.unmapped == 1


def test_bad_times_refuse_the_span_alone() -> None:
    mapped = map_spans(
        [
            span("01", "", 5, 2, voicewatch__pipeline_stage="transcription"),
            span("02", "", 1, 2, voicewatch__pipeline_stage="transcription"),
        ]
    )
    assert list(mapped.rejected.values()) == ["a span must not end before it starts"]
    assert len(mapped.events) == 2


def test_gunzip_stops_at_the_cap_and_reads_every_member() -> None:
    data = gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 10)
    assert gunzip_limited(data, 1010) == b"a" * 1000 + b"b" * 10
    with pytest.raises(TooLarge):
        gunzip_limited(data, 1009)
    with pytest.raises(TooLarge):
        gunzip_limited(gzip.compress(bytes(50_000_000)), 1 << 20)
    with pytest.raises(BadGzip):
        gunzip_limited(data[:20], 5000)
    with pytest.raises(BadGzip):
        gunzip_limited(b"not gzip", 5000)
