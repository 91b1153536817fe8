"""Every metric's one home (DESIGN.md "Metric definitions").

The package is split by where a figure comes from:

- ``live``: what is true now, from the minute-bucket counters and small state
  tables: realtime figures, queue depth, disambiguation backlog, circuit
  breaker and budget state. Never a scan of the event log.
- ``definitions``: the metric definitions themselves (``fold_group``,
  ``end_to_end_ms``, ``snapshot_values``), over the additive ``Totals``
  (``totals``) that ``period`` reads from one period of the event log.
- ``snapshots`` (rows), ``aggregate`` (the hourly/daily jobs), ``history``
  (ranges of snapshots, 24-hour windows), ``breakdown`` (per stage, with the
  one health rule, and per organization), ``retention`` (cleanup), and
  ``samples``: the few figures only the event log has, each a named, bounded
  query.

The alerts, the dashboard, the API and the Prometheus export read every
figure through the names below. Units: times UTC epoch ms, latencies ms,
rates and confidences fractions in [0, 1], costs USD.
"""

from __future__ import annotations

from voicewatch.metrics.aggregate import (
    aggregate_day,
    aggregate_hour,
    aggregate_range,
    catch_up_days,
    catch_up_hours,
)
from voicewatch.metrics.breakdown import (
    HEALTH,
    HealthThresholds,
    ingestion_figures,
    org_breakdown,
    stage_breakdown,
    stage_health,
)
from voicewatch.metrics.definitions import (
    end_to_end_ms,
    fold_group,
    p95,
    period_totals,
    safe_divide,
    snapshot_values,
    snapshot_weights,
    totals_from_snapshot,
)
from voicewatch.metrics.history import (
    counter_window_totals,
    historical_avg_end_to_end_latency,
    history,
    window_totals,
)
from voicewatch.metrics.live import (
    IN_FLIGHT,
    REALTIME_WINDOW_MINUTES,
    BudgetState,
    at_stage,
    budget_states,
    circuit_breaker_state,
    circuit_states,
    counter_totals,
    disambiguation_backlog,
    failure_rate,
    queue_depth,
    queue_depths,
    realtime,
    waiting_artifacts,
    window_bounds,
    window_counts,
)
from voicewatch.metrics.retention import cleanup, delete_in_batches
from voicewatch.metrics.samples import (
    CONFIDENCE_SAMPLE,
    MAX_COST_ARTIFACTS,
    artifact_costs,
    confidence_histogram,
    error_breakdown,
)
from voicewatch.metrics.snapshots import missing_days, missing_hours
from voicewatch.metrics.totals import RANGES, STAGES, EventGroup, Totals

__all__ = [
    "CONFIDENCE_SAMPLE",
    "HEALTH",
    "IN_FLIGHT",
    "MAX_COST_ARTIFACTS",
    "RANGES",
    "REALTIME_WINDOW_MINUTES",
    "STAGES",
    "BudgetState",
    "EventGroup",
    "HealthThresholds",
    "Totals",
    "aggregate_day",
    "aggregate_hour",
    "aggregate_range",
    "artifact_costs",
    "at_stage",
    "budget_states",
    "catch_up_days",
    "catch_up_hours",
    "circuit_breaker_state",
    "circuit_states",
    "cleanup",
    "confidence_histogram",
    "counter_totals",
    "counter_window_totals",
    "delete_in_batches",
    "disambiguation_backlog",
    "end_to_end_ms",
    "error_breakdown",
    "failure_rate",
    "fold_group",
    "historical_avg_end_to_end_latency",
    "history",
    "ingestion_figures",
    "missing_days",
    "missing_hours",
    "org_breakdown",
    "p95",
    "period_totals",
    "queue_depth",
    "queue_depths",
    "realtime",
    "safe_divide",
    "snapshot_values",
    "snapshot_weights",
    "stage_breakdown",
    "stage_health",
    "totals_from_snapshot",
    "waiting_artifacts",
    "window_bounds",
    "window_counts",
    "window_totals",
]
