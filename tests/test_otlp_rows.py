"""Plain stage spans as checked rows (otlp/rows.py): the same rows, counters and states
as the general path's events validated by log_events, and nothing unusual let through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from voicewatch.events import log_events
from voicewatch.otlp.mapping import Mapped, map_spans
from voicewatch.otlp.spans import STATUS_ERROR, Span
from voicewatch.store import make_engine, migrate
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.validation import EventError, validate_batch, validate_event

T0 = 1_796_000_000_000 * 1_000_000  # ns, 2026-12-01
MS = 1_000_000
TRACE = "cd" * 16


def span(span_id: str, parent: str = "", start: int = 0, end: int = 10, **attrs: Any) -> Span:
    error = attrs.pop("error", None)
    return Span(
        trace_id=TRACE,
        span_id=span_id * 8,
        parent_span_id=parent * 8,
        name="s",
        start_ns=T0 + start * MS,
        end_ns=T0 + end * MS,
        status_code=STATUS_ERROR if error else 0,
        exception={"exception.message": error} if error else {},
        attributes={k.replace("__", "."): v for k, v in attrs.items()},
    )


def stage(span_id: str, name: str = "transcription", **attrs: Any) -> Span:
    attrs.setdefault("voicewatch__artifact_id", "art_1")
    return span(span_id, voicewatch__pipeline_stage=name, **attrs)


def both(spans: list[Span]) -> tuple[Mapped, Mapped]:
    return map_spans(spans), map_spans(spans, checked_rows=False)


def assert_same_rows(fast: Mapped, general: Mapped) -> None:
    """Row for row what log_events would make of the general path's events."""
    assert fast.event_spans == general.event_spans
    assert not general.checked
    for index, (item, event) in enumerate(zip(fast.events, general.events, strict=True)):
        if index in fast.checked:
            assert item == validate_event(event)
        else:
            assert item == event


PLAIN = [
    [stage("01")],
    [stage("01", "claims_extraction", voicewatch__organization_id="org_1")],
    [
        stage("01", "entity_resolution", voicewatch__event_type="entity_needs_disambiguation"),
        stage(
            "02", "draft_generation", voicewatch__coach_user_id="c@x", voicewatch__voice_note_id="v"
        ),
    ],
    # identity inherited from the artifact's span, a child sent before its parent
    [
        span("02", "01", 1, 4, voicewatch__pipeline_stage="transcription"),
        span("01", "", 0, 9, voicewatch__artifact_id="art_9", voicewatch__organization_id="o"),
    ],
    [span("01", "", 3, 3, voicewatch__pipeline_stage="transcription")],  # no identity, 0 ms
]


@pytest.mark.parametrize("spans", PLAIN)
def test_plain_stage_spans_become_the_rows_validation_would_make(spans: list[Span]) -> None:
    fast, general = both(spans)
    assert fast.checked
    assert_same_rows(fast, general)


UNUSUAL = [
    stage("01", voicewatch__artifact_id=7),  # not a string
    stage("01", voicewatch__artifact_id="a" * 129),  # too long
    stage("01", voicewatch__artifact_id="caf\u00e9"),  # not ASCII: the careful check
    stage("01", voicewatch__organization_id="o\x00"),  # NUL
    stage("01", voicewatch__artifact_id="\ud800"),  # a lone surrogate (JSON can send one)
    stage("01", error="boom"),  # a failure
    stage("01", voicewatch__claim_count=12),  # metadata
    stage("01", voicewatch__claim_count="many"),  # bad metadata
    span("01", "", 0, 10, voicewatch__pipeline_stage="transcription",
         voicewatch__event_type="draft_confirmed"),  # an explicit other type
]  # fmt: skip


@pytest.mark.parametrize("item", UNUSUAL, ids=range(len(UNUSUAL)))
def test_anything_unusual_takes_the_general_path(item: Span) -> None:
    fast, general = both([item])
    assert not fast.checked
    assert fast.events == general.events


@pytest.mark.parametrize("start_ns", [1, 946_684_799_999 * MS, 7_258_118_400_001 * MS])
def test_times_outside_the_event_range_are_left_to_validation(start_ns: int) -> None:
    item = stage("01")
    item.start_ns, item.end_ns = start_ns, start_ns + 5 * MS
    fast, general = both([item])
    assert not fast.checked and fast.events == general.events
    with pytest.raises(EventError, match="between 2000 and 2200"):
        validate_event(general.events[0])


def test_a_request_with_genai_spans_gets_events_for_their_cost() -> None:
    usage = {"gen_ai__response__model": "gpt-4o-mini", "gen_ai__usage__input_tokens": 10}
    fast, general = both([stage("01"), span("02", "01", 1, 2, **usage), stage("03")])
    assert not fast.checked and fast.events == general.events


def test_validate_batch_takes_checked_indexes_as_they_are() -> None:
    row = validate_event(
        {"event_id": "e1", "event_type": "artifact_received", "timestamp": T0 // MS}
    )
    rows, invalid = validate_batch([row, {"event_type": "nope"}], checked={0})
    assert rows == [row] and rows[0] is row
    assert [bad.index for bad in invalid] == [1]


def _stored(engine: Engine) -> tuple[list[Any], list[Any], list[Any]]:
    with engine.connect() as conn:
        stored = [
            tuple(r)[1:]
            for r in conn.execute(select(events_t).order_by(events_t.c.id))
        ]  # fmt: skip
        counters = sorted(tuple(r) for r in conn.execute(select(counters_t)))
        states = sorted(tuple(r) for r in conn.execute(select(states_t)))
    return stored, counters, states


def test_the_store_ends_the_same_either_way_retries_included(tmp_path: Path) -> None:
    spans = [
        *(stage(f"{i:02d}", name, voicewatch__artifact_id=f"art_{i // 4}",
                voicewatch__organization_id="org") for i, name in enumerate(
            ["transcription", "claims_extraction", "entity_resolution", "draft_generation"] * 3))
    ]  # fmt: skip
    for index, item in enumerate(spans):
        item.start_ns += index * 20 * MS
        item.end_ns += index * 20 * MS
    spans.append(stage("99", error="boom"))  # and one the general path handles
    results = []
    stores = []
    for name, checked_rows in (("fast", True), ("general", False)):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        migrate(engine)
        for _ in range(2):  # the exporter's retry: duplicates only
            mapped = map_spans(spans, checked_rows=checked_rows)
            result = log_events(engine, mapped.events, received_at=1, checked=mapped.checked)
            results.append((result.accepted, result.duplicates, result.rejected))
        stores.append(_stored(engine))
        engine.dispose()
    assert results[:2] == results[2:] == [(27, 0, []), (0, 27, [])]
    assert stores[0] == stores[1]
    assert len(stores[0][0]) == 27
