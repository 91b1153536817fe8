"""Validation of incoming events, one item at a time.

``validate_event`` turns one JSON-like item into a flat row for the events
table, or says in one line what is wrong with it. A bad item never spoils its
batch: the caller keeps the good rows and reports the bad ones by index.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeGuard

from voicewatch import model

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$")
_STAGES = frozenset(s.value for s in model.Stage)
_STRING_FIELDS: dict[str, int] = {
    "artifact_id": model.ID_MAX_LEN,
    "voice_note_id": model.ID_MAX_LEN,
    "organization_id": model.ID_MAX_LEN,
    "coach_user_id": model.ID_MAX_LEN,
    "previous_status": model.STATUS_MAX_LEN,
    "new_status": model.STATUS_MAX_LEN,
    "error_message": model.ERROR_MESSAGE_MAX_LEN,
    "error_code": model.ERROR_CODE_MAX_LEN,
}
_TIME_FIELDS = ("stage_started_at", "stage_completed_at")
_FIELDS = frozenset(model.EVENT_FIELDS)
_METADATA_KEYS = frozenset(model.METADATA_FIELDS)
# 2000-01-01 .. 2200-01-01: anything outside is a unit mistake (seconds, µs).
MIN_TIMESTAMP_MS = 946_684_800_000
MAX_TIMESTAMP_MS = 7_258_118_400_000
# Sums of these go into counters: keep them far from float overflow.
MAX_METADATA_FLOAT = 1e9

#: Every key of a validated row, in the events table's column order: rows
#: start as a copy of ``EMPTY_ROW`` so the writer can take a tuple of all
#: columns with one C-level ``itemgetter`` instead of a ``.get`` per cell.
ROW_KEYS: tuple[str, ...] = (
    *(f for f in model.EVENT_FIELDS if f not in ("metadata", "timestamp")),
    *model.METADATA_FIELDS,
    "timestamp",
)
EMPTY_ROW: dict[str, Any] = dict.fromkeys(ROW_KEYS)
_MAX_INT = 2**31 - 1
MAX_DURATION_MS = 30 * 86_400_000
_METADATA_INT = frozenset(k for k, kind in model.METADATA_FIELDS.items() if kind == "int")
_METADATA_FLOAT = frozenset(k for k, kind in model.METADATA_FIELDS.items() if kind == "float")


class EventError(ValueError):
    """One item is not a valid event; the message says why, in one line."""


@dataclass(frozen=True)
class Invalid:
    index: int
    error: str


def _shown(value: Any) -> str:
    """A client's value quoted into a one-line message (escaped, cut to 64 characters)."""
    if not isinstance(value, str):
        return type(value).__name__
    return value[:64].encode("unicode_escape", "backslashreplace").decode("ascii")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(name: str, value: Any) -> float:
    if not _is_number(value):
        raise EventError(f"{name} must be a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise EventError(f"{name} is too large") from exc
    if not math.isfinite(number):
        raise EventError(f"{name} must be finite")
    return number


def _epoch_ms(name: str, value: Any) -> int:
    number = _finite(name, value)
    if not MIN_TIMESTAMP_MS <= number <= MAX_TIMESTAMP_MS:
        raise EventError(f"{name} must be epoch milliseconds (UTC) between 2000 and 2200")
    return int(number)


def _duration(name: str, value: Any) -> float:
    number = _finite(name, value)
    if number < 0:
        raise EventError(f"{name} must not be negative")
    if number > MAX_DURATION_MS:
        raise EventError(f"{name} is longer than 30 days")
    return number


def _string(name: str, value: Any, max_len: int) -> str:
    if not isinstance(value, str):
        raise EventError(f"{name} must be a string")
    if len(value) > max_len:
        raise EventError(f"{name} is longer than {max_len} characters")
    if "\x00" in value:
        raise EventError(f"{name} must not contain NUL characters")
    if not value.isascii():  # only non-ASCII text can hold a lone surrogate
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EventError(f"{name} is not valid Unicode (lone surrogate)") from exc
    return value


def _identifier(name: str, value: Any) -> str:
    text = _string(name, value, model.ID_MAX_LEN)
    if not _ID_RE.fullmatch(text):
        raise EventError(f"{name} must be letters, digits and _ . : @ - (not starting with one)")
    return text


def _metadata(value: Any, row: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise EventError("metadata must be an object")
    if not _METADATA_KEYS.issuperset(value):
        unknown = sorted(str(k) for k in set(value) - _METADATA_KEYS)
        raise EventError(f"unknown metadata field: {_shown(unknown[0])}")
    for key, item in value.items():
        if item is None:
            continue
        if key in _METADATA_INT:
            if type(item) is int and 0 <= item <= _MAX_INT:
                row[key] = item
                continue
        elif key in _METADATA_FLOAT:
            ceiling = 1 if key == "confidence_score" else MAX_METADATA_FLOAT
            if type(item) in (float, int) and 0 <= item <= ceiling:
                row[key] = float(item)
                continue
        elif plain_text(item, model.ID_MAX_LEN):
            row[key] = item
            continue
        _metadata_value(key, item, row)


def _metadata_value(key: str, item: Any, row: dict[str, Any]) -> None:
    """The careful check of one metadata value the fast path did not accept."""
    kind = model.METADATA_FIELDS[key]
    if kind == "str":
        row[key] = _string(f"metadata.{key}", item, model.ID_MAX_LEN)
        return
    number = _finite(f"metadata.{key}", item)
    if number < 0:
        raise EventError(f"metadata.{key} must not be negative")
    if kind == "int":
        if number != int(number):
            raise EventError(f"metadata.{key} must be a whole number")
        if number > _MAX_INT:
            raise EventError(f"metadata.{key} is too large")
        row[key] = int(number)
    else:
        if number > MAX_METADATA_FLOAT:
            raise EventError(f"metadata.{key} is too large")
        if key == "confidence_score" and number > 1:
            raise EventError("metadata.confidence_score must be between 0 and 1")
        row[key] = number


def plain_text(value: Any, max_len: int) -> TypeGuard[str]:
    """True for the common string that needs no closer look (ASCII, no NUL, short)."""
    return type(value) is str and len(value) <= max_len and value.isascii() and "\x00" not in value


def validate_event(item: Any) -> dict[str, Any]:
    """Check one event and return its flat row (without ``received_at``).

    The common, valid event is checked inline with exact type tests (this runs
    for every event ingested, so it is the ingest path's hot loop); anything
    unusual falls through to the careful helpers above, which either accept it
    (a float timestamp, non-ASCII text) or say precisely what is wrong.

    :raises EventError: with a one-line reason when the item is not valid.
    """
    if not isinstance(item, dict):
        raise EventError("an event must be a JSON object")
    if not _FIELDS.issuperset(item):
        unknown = sorted(str(k) for k in set(item) - _FIELDS)
        raise EventError(f"unknown field: {_shown(unknown[0])}")
    get = item.get
    event_id, event_type, timestamp = get("event_id"), get("event_type"), get("timestamp")
    for required, value in (
        ("event_id", event_id),
        ("event_type", event_type),
        ("timestamp", timestamp),
    ):
        if value is None:
            raise EventError(f"{required} is required")
    row = EMPTY_ROW.copy()
    if not (plain_text(event_id, model.ID_MAX_LEN) and _ID_RE.fullmatch(event_id)):
        event_id = _identifier("event_id", event_id)
    row["event_id"] = event_id
    if type(event_type) is not str or event_type not in model.EVENT_TYPE_NAMES:
        raise EventError(f"unknown event_type: {_shown(event_type)}")
    row["event_type"] = event_type
    if type(timestamp) is int and MIN_TIMESTAMP_MS <= timestamp <= MAX_TIMESTAMP_MS:
        row["timestamp"] = timestamp
    else:
        row["timestamp"] = _epoch_ms("timestamp", timestamp)
    for name, max_len in _STRING_FIELDS.items():
        value = get(name)
        if value is not None:
            row[name] = value if plain_text(value, max_len) else _string(name, value, max_len)
    stage = get("pipeline_stage")
    if stage is not None:
        if type(stage) is not str or stage not in _STAGES:
            raise EventError(f"unknown pipeline_stage: {_shown(stage)}")
        row["pipeline_stage"] = stage
    elif (default_stage := model.EVENT_TYPES_BY_NAME[event_type].stage) is not None:
        row["pipeline_stage"] = default_stage.value
    for name in _TIME_FIELDS:
        value = get(name)
        if value is not None:
            if type(value) is int and MIN_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS:
                row[name] = value
            else:
                row[name] = _epoch_ms(name, value)
    duration = get("duration_ms")
    if duration is not None:
        if type(duration) in (int, float) and 0 <= duration <= MAX_DURATION_MS:
            row["duration_ms"] = float(duration)
        else:
            row["duration_ms"] = _duration("duration_ms", duration)
    metadata = get("metadata")
    if metadata is not None:
        _metadata(metadata, row)
    return row


def validate_batch(
    items: list[Any], checked: Collection[int] = ()
) -> tuple[list[dict[str, Any]], list[Invalid]]:
    """Split a batch into valid rows and per-index errors.

    ``checked`` holds the indexes of items that are rows already, built by code
    that checked each of their fields itself (``otlp.rows``): exactly what
    ``validate_event`` would make of them, taken as they are. Nothing a client
    sends can name such an index; it is passed by the code that built the rows.
    """
    if checked:
        return _validate_some(items, checked)
    rows: list[dict[str, Any]] = []
    invalid: list[Invalid] = []
    for index, item in enumerate(items):
        try:
            rows.append(validate_event(item))
        except EventError as exc:
            invalid.append(Invalid(index, str(exc)))
    return rows, invalid


def _validate_some(
    items: list[Any], checked: Collection[int]
) -> tuple[list[dict[str, Any]], list[Invalid]]:
    rows: list[dict[str, Any]] = []
    invalid: list[Invalid] = []
    for index, item in enumerate(items):
        if index in checked:
            rows.append(item)
            continue
        try:
            rows.append(validate_event(item))
        except EventError as exc:
            invalid.append(Invalid(index, str(exc)))
    return rows, invalid
