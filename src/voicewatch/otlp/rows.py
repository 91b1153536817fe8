"""A completed stage span straight to its two stored rows, its values checked once.

The mapping's general output is event dicts, which ``log_events`` validates
one by one (``validation.validate_event``). Almost every span an instrumented
pipeline sends is the plain case: a stage that completed, with identity
strings, times and no metadata. Its two events (started, completed) share
every value that needs a check, and the rest are model constants or hex ids
made here. So those values are checked once per span, below, with the same
tests ``validate_event`` applies, and the two rows are built here as
plain dicts (the mapping lists their indexes in ``Mapped.checked``), which
``log_events`` stores without validating them again. (Plain dicts of plain
values, which the garbage collector leaves untracked: a dict subclass would be
tracked, and a batch's thousand rows alive through its write made measurable
work for it.) Anything else (a value that fails a check here, a failure, metadata,
GenAI cost to carry) is left to the general path, so what gets stored or
refused is the same either way: tests/test_otlp_rows.py checks the rows equal
``validate_event`` of the general path's events.
"""

from __future__ import annotations

from typing import Any

from voicewatch import model
from voicewatch.validation import (
    EMPTY_ROW,
    MAX_DURATION_MS,
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
)

_ID_MAX = model.ID_MAX_LEN


def stage_rows(
    identity: dict[str, Any],
    prefix: str,
    stage: str,
    started: str,
    completed: str,
    start_ns: int,
    end_ns: int,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The started and completed rows of a stage span, or ``None`` for the general path.

    ``identity`` holds only values that are not None (the mapping's); ``prefix``
    is the span's event id stem (``otlp.<start ms hex>.<trace>.<span>``), and
    ``stage``, ``started`` and ``completed`` come from ``model.STAGE_EVENTS``.
    """
    for value in identity.values():  # validation.plain_text, inline: it runs per span
        if type(value) is not str or len(value) > _ID_MAX or not value.isascii() or "\x00" in value:
            return None
    start_ms, end_ms = start_ns // 1_000_000, end_ns // 1_000_000
    if not MIN_TIMESTAMP_MS <= start_ms <= end_ms <= MAX_TIMESTAMP_MS:
        return None
    duration = round((end_ns - start_ns) / 1_000_000, 3)
    if not 0 <= duration <= MAX_DURATION_MS:
        return None
    opening = EMPTY_ROW.copy()
    opening.update(identity)
    opening["pipeline_stage"] = stage
    opening["stage_started_at"] = start_ms
    closing = opening.copy()
    opening["event_id"] = f"{prefix}.start"
    opening["event_type"] = started
    opening["timestamp"] = start_ms
    closing["event_id"] = f"{prefix}.end"
    closing["event_type"] = completed
    closing["timestamp"] = end_ms
    closing["stage_completed_at"] = end_ms
    closing["duration_ms"] = duration
    return opening, closing
