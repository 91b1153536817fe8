"""The raw, additive figures of one period and scope, and the vocabulary they are keyed by.

``Totals`` holds counts, sums and latency histograms from which
``metrics.definitions.snapshot_values`` derives every metric. Totals add up,
so a day is the sum of its hours and a range the sum of its days.
``EventGroup`` is one (organization, event type, stage) group of events of a
period as SQL grouped them (or as a counter cell carries them). Times are ms,
money USD.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voicewatch.clock import DAY_MS, HOUR_MS
from voicewatch.histogram import LatencyHistogram
from voicewatch.model import PROCESSING_STAGES

HOURLY = "hourly"

DAILY = "daily"

#: The four processing stages, in pipeline order.
STAGES: tuple[str, ...] = tuple(s.stage.value for s in PROCESSING_STAGES)

#: The histogram of end-to-end latency; the others are named after their stage.
E2E = "end_to_end"

HISTOGRAMS: tuple[str, ...] = (E2E, *STAGES)

#: Completion event type -> the stage it completes.
COMPLETION_STAGE: dict[str, str] = {
    t: s.stage.value for s in PROCESSING_STAGES for t in s.completed
}

PERIOD_MS: dict[str, int] = {HOURLY: HOUR_MS, DAILY: DAY_MS}

#: range name -> (snapshot period type, span in ms), for history and the breakdowns
RANGES: dict[str, tuple[str, int]] = {
    "1h": (HOURLY, HOUR_MS),
    "6h": (HOURLY, 6 * HOUR_MS),
    "24h": (HOURLY, DAY_MS),
    "7d": (DAILY, 7 * DAY_MS),
    "30d": (DAILY, 30 * DAY_MS),
}

#: The catch-up looks this far back by default: the hourly retention, so that the
#: catch-up never rebuilds hours that retention has just removed.
CATCH_UP_LOOKBACK_DAYS = 7


def _stage_dict(value: Any) -> dict[str, Any]:
    return dict.fromkeys(STAGES, value)


@dataclass
class Totals:
    """Additive raw figures of one period and scope. Times are ms, money USD.

    ``e2e_values`` keeps the exact end-to-end latencies while one period's
    values are at hand (so the hourly p95 is exact); merged totals drop them
    and fall back to the histograms.
    """

    received: int = 0
    completed: int = 0
    failed: int = 0
    claims: int = 0
    entities: int = 0
    drafts: int = 0
    ai_cost: float = 0.0
    cost_artifacts: int = 0
    e2e_sum: float = 0.0
    e2e_n: int = 0
    e2e_values: list[float] | None = None
    latency_sum: dict[str, float] = field(default_factory=lambda: _stage_dict(0.0))
    latency_n: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    started: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    stage_failed: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    stage_completed: dict[str, int] = field(default_factory=lambda: _stage_dict(0))
    transcript_conf_sum: float = 0.0
    transcript_conf_n: int = 0
    claim_conf_sum: float = 0.0
    claim_conf_n: int = 0
    resolution_entities: int = 0
    resolution_disambiguations: int = 0
    histograms: dict[str, LatencyHistogram] = field(
        default_factory=lambda: {name: LatencyHistogram() for name in HISTOGRAMS}
    )

    def add_e2e(self, latencies_ms: Sequence[float], buckets: Sequence[int]) -> None:
        """Count completed artifacts' end-to-end latencies (ms) with their histogram buckets.

        The caller buckets each value once (``histogram.index_of``), as one
        value is added to two scopes (the platform and its organization).
        """
        self.e2e_sum += math.fsum(latencies_ms)
        self.e2e_n += len(latencies_ms)
        if self.e2e_values is None:
            self.e2e_values = []
        self.e2e_values.extend(latencies_ms)
        histogram = self.histograms[E2E]
        for bucket, count in Counter(buckets).items():
            histogram.add_bucket(bucket, count)

    def merge(self, other: Totals) -> Totals:
        """Add ``other`` into this one (in place); exact latency values are dropped."""
        for name in (
            "received", "completed", "failed", "claims", "entities", "drafts", "ai_cost",
            "cost_artifacts", "e2e_sum", "e2e_n", "transcript_conf_sum", "transcript_conf_n",
            "claim_conf_sum", "claim_conf_n", "resolution_entities", "resolution_disambiguations",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("latency_sum", "latency_n", "started", "stage_failed", "stage_completed"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for stage in STAGES:
                mine[stage] += theirs[stage]
        for name in HISTOGRAMS:
            self.histograms[name].merge(other.histograms[name])
        self.e2e_values = None
        return self


@dataclass(frozen=True)
class EventGroup:
    """Aggregates of the events of one (organization, event type, stage) in a period.

    When the database buckets durations itself, a group is further split by
    ``bucket``: the latency-histogram bucket (``histogram.bucket_index``) of the
    stage completion events' ``duration_ms`` (``ZERO_BUCKET`` for ~0 ms; None
    for events that are not stage completions with a duration). Every figure
    of a group is additive, so folding the split groups one by one is the same
    as folding their union.
    """

    organization_id: str | None
    event_type: str
    pipeline_stage: str | None
    events: int
    # the rest default to nothing, for groups known only by their count (counters)
    duration_sum: float = 0.0
    duration_n: int = 0
    confidence_sum: float = 0.0
    confidence_n: int = 0
    claims: int = 0
    entities: int = 0
    disambiguations: int = 0
    drafts: int = 0
    ai_cost: float = 0.0
    cost_events: int = 0
    bucket: int | None = None
