"""validation.py, pure: every rule, and properties over arbitrary JSON-like input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import BASE_MS, make_event, make_events, make_traffic
from voicewatch import model
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.validation import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    EventError,
    Invalid,
    validate_batch,
    validate_event,
)

COLUMNS = frozenset(c.name for c in events_t.columns) - {"id", "received_at"}


def good(**fields: Any) -> dict[str, Any]:
    """A valid transcription_completed event with every field set, then ``fields`` merged."""
    event = make_event(
        "transcription_completed",
        BASE_MS + 5_000,
        artifact_id="art_1",
        voice_note_id="vn_1",
        organization_id="org_a",
        coach_user_id="coach_1",
        pipeline_stage="transcription",
        stage_started_at=BASE_MS,
        stage_completed_at=BASE_MS + 5_000,
        duration_ms=5_000,
        previous_status="transcribing",
        new_status="transcribed",
        error_message=None,
        error_code=None,
        metadata={
            "confidence_score": 0.91,
            "transcript_duration": 31.5,
            "transcript_word_count": 75,
            "ai_model": "whisper-1",
            "ai_cost": 0.00315,
            "claim_count": 3,
            "entity_count": 4,
            "disambiguation_count": 1,
            "draft_count": 3,
            "retry_attempt": 0,
        },
    )
    event.update(fields)
    return event


def with_meta(**meta: Any) -> dict[str, Any]:
    return good(metadata=meta)


def rejects(item: Any, *words: str) -> str:
    """Assert ``item`` is rejected with a one-line message naming ``words``; return it."""
    with pytest.raises(EventError) as info:
        validate_event(item)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


# --- what a valid event becomes -----------------------------------------------------


def test_a_full_event_becomes_a_flat_row_of_table_columns() -> None:
    event = good()
    row = validate_event(event)
    assert set(row) == COLUMNS  # every column, so the writer takes a tuple in one step
    assert row["event_id"] == event["event_id"]
    assert row["event_type"] == "transcription_completed"
    assert row["timestamp"] == BASE_MS + 5_000
    assert row["duration_ms"] == 5_000
    assert row["pipeline_stage"] == "transcription"
    assert row["transcript_word_count"] == 75 and isinstance(row["transcript_word_count"], int)
    assert row["confidence_score"] == 0.91
    assert row["ai_model"] == "whisper-1"
    assert row["retry_attempt"] == 0
    assert "metadata" not in row
    assert row["error_message"] is None  # None is "absent"


def test_the_minimal_event_is_three_fields() -> None:
    row = validate_event({"event_id": "e1", "event_type": "rate_limit_hit", "timestamp": BASE_MS})
    given = {k: v for k, v in row.items() if v is not None}
    assert given == {"event_id": "e1", "event_type": "rate_limit_hit", "timestamp": BASE_MS}


def test_the_stage_defaults_to_the_event_types_stage() -> None:
    row = validate_event(make_event("claims_extracted"))
    assert row["pipeline_stage"] == "claims_extraction"
    assert validate_event(make_event("artifact_completed"))["pipeline_stage"] is None
    # an explicit stage wins (artifact_failed carries the failing stage)
    row = validate_event(make_event("artifact_failed", pipeline_stage="draft_generation"))
    assert row["pipeline_stage"] == "draft_generation"


@pytest.mark.parametrize("event_type", sorted(model.EVENT_TYPE_NAMES))
def test_every_one_of_the_25_types_is_accepted(event_type: str) -> None:
    assert validate_event(make_event(event_type))["event_type"] == event_type


@pytest.mark.parametrize("stage", [s.value for s in model.Stage])
def test_every_stage_is_accepted(stage: str) -> None:
    assert (
        validate_event(make_event("artifact_failed", pipeline_stage=stage))["pipeline_stage"]
        == stage
    )


def test_every_factory_event_is_valid() -> None:
    events = make_traffic(50, failure_rate=0.3, rng=7)
    rows, invalid = validate_batch(events)
    assert invalid == []
    assert len(rows) == len(events)


def test_floats_that_are_whole_numbers_are_accepted_as_counts_and_times() -> None:
    row = validate_event(good(timestamp=float(BASE_MS), metadata={"claim_count": 3.0}))
    assert row["timestamp"] == BASE_MS and isinstance(row["timestamp"], int)
    assert row["claim_count"] == 3 and isinstance(row["claim_count"], int)


def test_null_metadata_values_and_null_metadata_are_absent() -> None:
    assert validate_event(with_meta(claim_count=None))["claim_count"] is None
    row = validate_event(good(metadata=None))
    assert all(row[key] is None for key in model.METADATA_FIELDS)


# --- rejections, one rule at a time --------------------------------------------------


@pytest.mark.parametrize("item", [None, [], "event", 3, 1.5, True, ["event_id"]])
def test_an_event_must_be_an_object(item: Any) -> None:
    rejects(item, "object")


def test_unknown_fields_are_rejected_by_name() -> None:
    rejects(good(colour="red"), "unknown field", "colour")
    rejects(good(eventType="artifact_received"), "eventType")
    # the name is shown, but bounded
    message = rejects(good(**{"x" * 5000: 1}), "unknown field")
    assert len(message) < 200


@pytest.mark.parametrize(
    "item",
    [
        {"a\nb": 1, "event_id": "e1"},
        {"event_id": "e1", "event_type": "x\r\ny", "timestamp": BASE_MS},
        {
            "event_id": "e1",
            "event_type": "rate_limit_hit",
            "timestamp": BASE_MS,
            "pipeline_stage": "x\ny",
        },
    ],
)
def test_error_messages_stay_on_one_line_when_they_echo_the_input(item: dict[str, Any]) -> None:
    # BUG: the unknown field / event_type / pipeline_stage is echoed verbatim,
    # so a client-sent newline splits the "one line" reason (and the log line).
    rejects(item)


def test_unknown_metadata_keys_are_rejected_by_name() -> None:
    rejects(with_meta(sentiment=0.4), "unknown metadata field", "sentiment")
    rejects(good(metadata={"claim_count": 1, "tokens": 7}), "tokens")


@pytest.mark.parametrize("metadata", [[], "x", 3, True, [["claim_count", 1]]])
def test_metadata_must_be_an_object(metadata: Any) -> None:
    rejects(good(metadata=metadata), "metadata", "object")


@pytest.mark.parametrize(
    "event_type", ["no_such_type", "ARTIFACT_RECEIVED", "", " artifact_received"]
)
def test_unknown_event_types_are_rejected(event_type: str) -> None:
    rejects(good(event_type=event_type), "unknown event_type")


@pytest.mark.parametrize("event_type", [3, 1.0, True, ["artifact_received"], {"a": 1}])
def test_non_string_event_types_are_rejected(event_type: Any) -> None:
    rejects(good(event_type=event_type), "event_type")


@pytest.mark.parametrize("stage", ["storage", "Transcription", "", "transcription "])
def test_unknown_stages_are_rejected(stage: str) -> None:
    rejects(good(pipeline_stage=stage), "unknown pipeline_stage")


@pytest.mark.parametrize("stage", [3, True, 1.5, ["transcription"], {"stage": "x"}])
def test_non_string_stages_are_rejected_with_an_event_error(stage: Any) -> None:
    # BUG: a list or an object here raised TypeError ("unhashable type") from
    # ``stage not in _STAGES`` instead of EventError, failing the whole batch.
    rejects(good(pipeline_stage=stage), "pipeline_stage")


@pytest.mark.parametrize("field", ["event_id", "event_type", "timestamp"])
def test_required_fields_missing_or_null_are_rejected(field: str) -> None:
    event = good()
    del event[field]
    rejects(event, field, "required")
    rejects(good(**{field: None}), field, "required")


@pytest.mark.parametrize(
    "event_id",
    ["", " e1", "e 1", "-e1", "_e1", "e1/2", "e1\x00", "é1", "e1;drop", "x" * 129, "e1\n"],
)
def test_bad_event_ids_are_rejected(event_id: str) -> None:
    # "e1\n": BUG: ``_ID_RE`` ends in ``$``, which also matches before a
    # trailing newline, so "e1\n" was accepted as an identifier.
    rejects(good(event_id=event_id), "event_id")


@pytest.mark.parametrize("event_id", ["e1", "0f8fad5b-d9cb-469f-a165-70867728950e", "a.b:c@d_e-f"])
def test_good_event_ids_are_accepted(event_id: str) -> None:
    assert validate_event(good(event_id=event_id))["event_id"] == event_id


@pytest.mark.parametrize("event_id", [12345, 1.5, True, ["e1"]])
def test_event_ids_must_be_strings(event_id: Any) -> None:
    rejects(good(event_id=event_id), "event_id", "string")


NUMERIC_FIELDS = ["timestamp", "stage_started_at", "stage_completed_at", "duration_ms"]
NUMERIC_METADATA = [k for k, kind in model.METADATA_FIELDS.items() if kind != "str"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", NUMERIC_FIELDS)
def test_non_finite_numbers_are_rejected(field: str, value: float) -> None:
    rejects(good(**{field: value}), field)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("key", NUMERIC_METADATA)
def test_non_finite_metadata_numbers_are_rejected(key: str, value: float) -> None:
    rejects(with_meta(**{key: value}), f"metadata.{key}")


@pytest.mark.parametrize("value", [True, False, "12", "1767225600000", [1], {"v": 1}])
@pytest.mark.parametrize("field", NUMERIC_FIELDS)
def test_booleans_and_strings_are_not_numbers(field: str, value: Any) -> None:
    rejects(good(**{field: value}), field, "number")


@pytest.mark.parametrize("value", [True, False, "3", [3]])
@pytest.mark.parametrize("key", NUMERIC_METADATA)
def test_booleans_and_strings_are_not_metadata_numbers(key: str, value: Any) -> None:
    rejects(with_meta(**{key: value}), f"metadata.{key}", "number")


def test_huge_integers_are_rejected_not_overflowed() -> None:
    rejects(good(timestamp=10**400), "timestamp")
    rejects(good(duration_ms=10**400), "duration_ms")
    rejects(with_meta(claim_count=10**400), "claim_count")
    rejects(with_meta(claim_count=2**31), "claim_count", "too large")
    assert validate_event(with_meta(claim_count=2**31 - 1))["claim_count"] == 2**31 - 1


def test_negative_durations_are_rejected() -> None:
    rejects(good(duration_ms=-1), "duration_ms", "negative")
    rejects(good(duration_ms=-0.001), "duration_ms", "negative")
    assert validate_event(good(duration_ms=0))["duration_ms"] == 0


def test_durations_longer_than_30_days_are_rejected() -> None:
    assert validate_event(good(duration_ms=30 * 86_400_000))["duration_ms"] == 30 * 86_400_000
    rejects(good(duration_ms=30 * 86_400_000 + 1), "duration_ms", "30 days")


@pytest.mark.parametrize("field", ["timestamp", "stage_started_at", "stage_completed_at"])
def test_timestamps_in_seconds_or_microseconds_are_rejected(field: str) -> None:
    seconds = BASE_MS // 1000
    rejects(good(**{field: seconds}), field, "milliseconds")
    rejects(good(**{field: seconds + 0.5}), field, "milliseconds")
    rejects(good(**{field: BASE_MS * 1000}), field, "milliseconds")
    rejects(good(**{field: -BASE_MS}), field)
    rejects(good(**{field: 0}), field)


def test_the_timestamp_range_is_inclusive_2000_to_2200() -> None:
    assert validate_event(good(timestamp=MIN_TIMESTAMP_MS))["timestamp"] == MIN_TIMESTAMP_MS
    assert validate_event(good(timestamp=MAX_TIMESTAMP_MS))["timestamp"] == MAX_TIMESTAMP_MS
    rejects(good(timestamp=MIN_TIMESTAMP_MS - 1), "timestamp")
    rejects(good(timestamp=MAX_TIMESTAMP_MS + 1), "timestamp")


STRING_LIMITS = {
    "artifact_id": model.ID_MAX_LEN,
    "voice_note_id": model.ID_MAX_LEN,
    "organization_id": model.ID_MAX_LEN,
    "coach_user_id": model.ID_MAX_LEN,
    "previous_status": model.STATUS_MAX_LEN,
    "new_status": model.STATUS_MAX_LEN,
    "error_message": model.ERROR_MESSAGE_MAX_LEN,
    "error_code": model.ERROR_CODE_MAX_LEN,
}


@pytest.mark.parametrize(("field", "limit"), sorted(STRING_LIMITS.items()))
def test_oversized_strings_are_rejected_at_the_limit(field: str, limit: int) -> None:
    assert validate_event(good(**{field: "é" * limit}))[field] == "é" * limit
    rejects(good(**{field: "x" * (limit + 1)}), field, "longer")


def test_the_ai_model_string_is_bounded() -> None:
    assert validate_event(with_meta(ai_model="m" * model.ID_MAX_LEN))["ai_model"]
    rejects(with_meta(ai_model="m" * (model.ID_MAX_LEN + 1)), "metadata.ai_model", "longer")
    rejects(with_meta(ai_model=4), "metadata.ai_model", "string")


@pytest.mark.parametrize("field", sorted(STRING_LIMITS))
def test_nul_characters_are_rejected(field: str) -> None:
    rejects(good(**{field: "a\x00b"}), field, "NUL")


def test_nul_in_the_ai_model_is_rejected() -> None:
    rejects(with_meta(ai_model="gpt\x00"), "ai_model", "NUL")


@pytest.mark.parametrize("field", sorted(STRING_LIMITS))
def test_string_fields_must_be_strings(field: str) -> None:
    for value in (5, True, ["a"], {"a": "b"}):
        rejects(good(**{field: value}), field, "string")


def test_lone_surrogates_are_rejected() -> None:
    # BUG: json.loads('"\\ud800"') gives a str that cannot be encoded as UTF-8;
    # it passed validation and then the database driver raised
    # UnicodeEncodeError for the whole batch (see test_events.py).
    lone = json.loads('"a\\ud800"')
    for field in sorted(STRING_LIMITS):
        rejects(good(**{field: lone}), field)
    rejects(with_meta(ai_model=lone), "ai_model")


@pytest.mark.parametrize("key", [k for k, kind in model.METADATA_FIELDS.items() if kind == "int"])
def test_metadata_counts_must_be_whole_and_non_negative(key: str) -> None:
    rejects(with_meta(**{key: 2.5}), f"metadata.{key}", "whole")
    rejects(with_meta(**{key: -1}), f"metadata.{key}", "negative")
    rejects(with_meta(**{key: -1.0}), f"metadata.{key}", "negative")
    assert validate_event(with_meta(**{key: 0}))[key] == 0


@pytest.mark.parametrize("key", [k for k, kind in model.METADATA_FIELDS.items() if kind == "float"])
def test_metadata_amounts_must_not_be_negative(key: str) -> None:
    rejects(with_meta(**{key: -0.01}), f"metadata.{key}", "negative")
    assert validate_event(with_meta(**{key: 0.5}))[key] == 0.5


def test_confidence_score_is_between_0_and_1() -> None:
    assert validate_event(with_meta(confidence_score=1))["confidence_score"] == 1.0
    assert validate_event(with_meta(confidence_score=0))["confidence_score"] == 0.0
    rejects(with_meta(confidence_score=1.0001), "confidence_score", "between 0 and 1")
    rejects(with_meta(confidence_score=87), "confidence_score")
    rejects(with_meta(confidence_score=-0.1), "confidence_score")


def test_ai_cost_is_bounded_so_counter_sums_cannot_overflow() -> None:
    # BUG: ai_cost accepts any finite float; two events of 1e308 in one minute
    # make PostgreSQL's counter upsert raise "value out of range: overflow",
    # and from then on every batch holding a cost for that minute fails whole.
    rejects(with_meta(ai_cost=1e308), "ai_cost")


# --- batches --------------------------------------------------------------------------


def test_a_batch_keeps_good_rows_in_order_and_reports_bad_ones_by_index() -> None:
    events = make_events("art_b", rng=3)
    batch: list[Any] = list(events)
    batch.insert(2, {"event_type": "artifact_received"})
    batch.insert(5, "not an event")
    batch.append(good(duration_ms=-5))
    rows, invalid = validate_batch(batch)
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in events]
    assert [i.index for i in invalid] == [2, 5, len(batch) - 1]
    assert all(isinstance(i, Invalid) and i.error for i in invalid)
    assert "event_id" in invalid[0].error
    assert "duration_ms" in invalid[2].error


def test_an_empty_batch_is_empty() -> None:
    assert validate_batch([]) == ([], [])


# --- properties -----------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and ±inf included
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from([*model.EVENT_FIELDS, "extra", ""])
META_NAMES = st.sampled_from([*model.METADATA_FIELDS, "extra"])
#: Values near the edges of the rules: right and wrong types, limits, units.
EDGY_VALUES = (
    JSON_VALUES
    | st.sampled_from(sorted(model.EVENT_TYPE_NAMES))
    | st.sampled_from([s.value for s in model.Stage])
    | st.integers(min_value=MIN_TIMESTAMP_MS - 10, max_value=MAX_TIMESTAMP_MS + 10)
    | st.floats(min_value=-2, max_value=2)
    | st.text(alphabet="ab\x00\n-_.", min_size=0, max_size=200)
)
METADATA = st.dictionaries(META_NAMES, EDGY_VALUES, max_size=5)
EVENTISH = st.dictionaries(FIELD_NAMES, EDGY_VALUES | METADATA, min_size=0, max_size=10)


def _assert_row_or_event_error(item: Any) -> None:
    try:
        row = validate_event(item)
    except EventError as exc:
        assert str(exc)
        return
    assert set(row) <= COLUMNS
    assert {"event_id", "event_type", "timestamp"} <= set(row)
    assert row["event_type"] in model.EVENT_TYPE_NAMES
    assert isinstance(row["timestamp"], int)
    assert MIN_TIMESTAMP_MS <= row["timestamp"] <= MAX_TIMESTAMP_MS
    for key, value in row.items():
        if isinstance(value, float):
            assert math.isfinite(value), key
        assert not isinstance(value, bool | dict | list), key
        if isinstance(value, str):
            assert "\x00" not in value
    if "pipeline_stage" in row:
        assert row["pipeline_stage"] in {s.value for s in model.Stage}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_any_json_value_validates_or_raises_event_error(item: Any) -> None:
    _assert_row_or_event_error(item)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTISH)
def test_any_event_shaped_object_validates_or_raises_event_error(item: dict[str, Any]) -> None:
    _assert_row_or_event_error(item)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(field=FIELD_NAMES, value=EDGY_VALUES | METADATA)
def test_one_changed_field_of_a_good_event_validates_or_raises_event_error(
    field: str, value: Any
) -> None:
    _assert_row_or_event_error(good(**{field: value}))


@settings(max_examples=200)
@given(key=META_NAMES, value=EDGY_VALUES)
def test_one_changed_metadata_key_validates_or_raises_event_error(key: str, value: Any) -> None:
    _assert_row_or_event_error(with_meta(**{key: value}))


@settings(max_examples=60)
@given(st.lists(EVENTISH | JSON_VALUES, max_size=8))
def test_a_batch_splits_into_rows_and_errors_covering_every_index(items: list[Any]) -> None:
    rows, invalid = validate_batch(items)
    assert len(rows) + len(invalid) == len(items)
    assert [i.index for i in invalid] == sorted({i.index for i in invalid})
    assert all(0 <= i.index < len(items) for i in invalid)
