"""The few figures only the event log has, each a named query with a bound.

The counters and snapshots carry totals and averages; a page sometimes needs
a figure they do not keep. Each such read is here, named, and bounded by
what it reads, never by how many events exist:

- ``artifact_costs``: the AI cost of each artifact of a page (at most a page
  of ids, through the artifact index);
- ``confidence_histogram``: the spread of transcript and claim confidences
  (the most recent ``CONFIDENCE_SAMPLE`` of each kind in a range);
- ``error_breakdown``: a stage's failures of the last 24 h by error code (at
  most 30 codes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch import model
from voicewatch.clock import DAY_MS
from voicewatch.clock import now_ms as _clock_now
from voicewatch.events import NOT_COST_BEARING
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_pipeline_events as events_t

#: Confidence histogram: the most recent this-many confidences per kind in the range.
CONFIDENCE_SAMPLE = 5000
CONFIDENCE_BINS = 10
#: artifact_costs reads at most this many artifacts (a page of the grid is 50, the API 200).
MAX_COST_ARTIFACTS = 500


def artifact_costs(engine: Engine, artifact_ids: list[str]) -> dict[str, float]:
    """AI cost (USD) per artifact: the sum of its cost-bearing events' ``ai_cost``.

    Budget events are not cost-bearing (their ``ai_cost`` is a running total).
    :raises ValueError: for more than ``MAX_COST_ARTIFACTS`` ids.
    """
    if not artifact_ids:
        return {}
    if len(artifact_ids) > MAX_COST_ARTIFACTS:
        raise ValueError(f"at most {MAX_COST_ARTIFACTS} artifacts at once")
    query = (
        select(events_t.c.artifact_id, func.sum(events_t.c.ai_cost))
        .where(
            events_t.c.artifact_id.in_(artifact_ids),
            events_t.c.ai_cost.is_not(None),
            events_t.c.event_type.not_in(sorted(NOT_COST_BEARING)),
        )
        .group_by(events_t.c.artifact_id)
    )
    with read_connection(engine) as conn:
        return {r[0]: float(r[1]) for r in conn.execute(query) if r[1] is not None}


def confidence_histogram(engine: Engine, since: int, until: int) -> dict[str, Any]:
    """Histogram of transcript and claim confidences in [since, until).

    A bounded query: the most recent ``CONFIDENCE_SAMPLE`` ``transcription_completed``
    and ``claims_extracted`` events of the range (their ``confidence_score``: the
    transcript's confidence, and the average confidence of the note's claims),
    read through the (event_type, timestamp) index, bucketed in tenths.
    """
    out: dict[str, Any] = {"bins": [round((i + 0.5) / CONFIDENCE_BINS, 3)
                                    for i in range(CONFIDENCE_BINS)]}  # fmt: skip
    with read_connection(engine) as conn:
        for key, event_type in (
            ("transcript", "transcription_completed"),
            ("claims", "claims_extracted"),
        ):
            query = (
                select(events_t.c.confidence_score)
                .where(
                    events_t.c.event_type == event_type,
                    events_t.c.timestamp >= since,
                    events_t.c.timestamp < until,
                    events_t.c.confidence_score.is_not(None),
                )
                .order_by(events_t.c.timestamp.desc())
                .limit(CONFIDENCE_SAMPLE)
            )
            counts = [0] * CONFIDENCE_BINS
            n = 0
            for (value,) in conn.execute(query):
                index = min(CONFIDENCE_BINS - 1, max(0, int(float(value) * CONFIDENCE_BINS)))
                counts[index] += 1
                n += 1
            out[key] = counts
            out[f"{key}_n"] = n
    out["sample"] = CONFIDENCE_SAMPLE
    return out


def error_breakdown(engine: Engine, stage: str, now: int | None = None) -> list[dict[str, Any]]:
    """Failed notes at ``stage`` over the last 24 h, counted by error code.

    Each failed note counts once: a pipeline note that fails says so twice (its
    stage's failed event and ``artifact_failed``), so events are counted per
    artifact; an event without an artifact counts alone.
    """
    now = _clock_now() if now is None else now
    failure_types = sorted(model.FAILURE_EVENT_TYPES)
    notes = func.count(func.distinct(func.coalesce(events_t.c.artifact_id, events_t.c.event_id)))
    query = (
        select(
            events_t.c.error_code,
            notes,
            func.max(events_t.c.error_message),
            func.max(events_t.c.timestamp),
        )
        .where(
            events_t.c.pipeline_stage == stage,
            events_t.c.timestamp >= now - DAY_MS,
            events_t.c.event_type.in_(failure_types),
        )
        .group_by(events_t.c.error_code)
        .order_by(notes.desc())
        .limit(30)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(query).all()
    total = sum(int(r[1]) for r in rows) or 1
    return [
        {
            "error_code": r[0] or "unknown",
            "count": int(r[1]),
            "share": int(r[1]) / total,
            "sample_message": r[2],
            "last_seen": r[3],
        }
        for r in rows
    ]
