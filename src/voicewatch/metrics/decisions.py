"""The coach loop's figures for a period, one definition each (from ``coach_decisions``).

Computed from the decision rows themselves (not from events), for an hour or a
day alike, so a day's median is exact rather than merged. Definitions:

- ``confirmation_rate`` = confirmed / (confirmed + rejected), by a person;
- ``rejection_rate`` = rejected / (confirmed + rejected);
- ``median_time_to_decision_ms`` / ``p95_time_to_decision_ms``: over the
  ``waited_ms`` of those confirms and rejects (median: the middle value, the mean of
  the two middle ones for an even count; p95: the seed's ``sorted[floor(n * 0.95)]``);
- ``auto_applied_share`` = auto_applied / (auto_applied + confirmed + rejected);
- ``undo_rate`` = undone / auto_applied;
- ``drafts_expired``: drafts that expired;
- ``resolved_by_person``: waiting names a person resolved (a player or "not a player");
- ``resolved_by_alias``: names a learned alias resolved (resolutions made in the period
  with ``resolved_by`` = ``alias``).

"Confirmed" is a person's confirm only. A draft applied without asking is also told
as a ``draft_confirmed`` event (``new_status`` ``auto_applied``: the event log and the
timeline show it), but here it counts as ``auto_applied``, never in the
confirmation rate; an undone draft a person then confirms counts once in each.

Every ratio is 0 when its denominator is (never NaN). Scopes: the platform (``""``)
and each organization.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from voicewatch.metrics.definitions import p95, safe_divide
from voicewatch.model import RESOLVED_BY_ALIAS as BY_ALIAS
from voicewatch.store.tables import PLATFORM, coach_decisions, voice_note_entity_resolutions

#: The keys this module adds to a snapshot (its ``decision_metrics`` column).
DECISION_METRICS = (
    "confirmation_rate",
    "rejection_rate",
    "median_time_to_decision_ms",
    "p95_time_to_decision_ms",
    "auto_applied_share",
    "undo_rate",
    "drafts_expired",
    "resolved_by_person",
    "resolved_by_alias",
)


@dataclass
class DecisionTotals:
    """Raw counts of one scope and period."""

    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    waits: list[float] = field(default_factory=list)
    by_alias: int = 0


def median(values: list[float]) -> float:
    """The middle value (the mean of the two middle ones), 0 when there are none."""
    if not values:
        return 0.0
    ordered, half = sorted(values), len(values) // 2
    return float(ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2)


def decision_totals(conn: Connection, start: int, end: int) -> dict[str, DecisionTotals]:
    """Each scope's counts over decisions made in [start, end) (two grouped reads)."""
    totals: dict[str, DecisionTotals] = defaultdict(DecisionTotals)
    rows = conn.execute(
        select(
            coach_decisions.c.organization_id,
            coach_decisions.c.action,
            coach_decisions.c.waited_ms,
        ).where(coach_decisions.c.at_ms >= start, coach_decisions.c.at_ms < end)
    )
    for org, action, waited in rows:
        for scope in (PLATFORM, org):
            totals[scope].actions[action] += 1
            if action in ("confirmed", "rejected") and waited is not None:
                totals[scope].waits.append(float(waited))
    res = voice_note_entity_resolutions
    aliased = conn.execute(
        select(res.c.organization_id, func.count())
        .where(res.c.resolved_by == BY_ALIAS, res.c.created_at >= start, res.c.created_at < end)
        .group_by(res.c.organization_id)
    )
    for org, count in aliased:
        totals[PLATFORM].by_alias += int(count)
        totals[org].by_alias += int(count)
    totals.setdefault(PLATFORM, DecisionTotals())
    return dict(totals)


def decision_values(t: DecisionTotals) -> dict[str, Any]:
    """The figures of the module docstring from one scope's counts."""
    a = t.actions
    decided = a["confirmed"] + a["rejected"]
    return {
        "confirmation_rate": safe_divide(a["confirmed"], decided),
        "rejection_rate": safe_divide(a["rejected"], decided),
        "median_time_to_decision_ms": median(t.waits),
        "p95_time_to_decision_ms": p95(t.waits),
        "auto_applied_share": safe_divide(a["auto_applied"], a["auto_applied"] + decided),
        "undo_rate": safe_divide(a["undone"], a["auto_applied"]),
        "drafts_expired": a["expired"],
        "resolved_by_person": a["user_resolved"] + a["unresolved"],
        "resolved_by_alias": t.by_alias,
    }


def attach_decision_metrics(
    engine: Any, rows: list[dict[str, Any]], start: int, end: int
) -> list[dict[str, Any]]:
    """Give each snapshot row of [start, end) its scope's figures (``decision_metrics``, JSON).

    A scope with decisions but no snapshot row (an organization with no events in
    the period) counts in the platform's row only.
    """
    from voicewatch.metrics.snapshots import dumps
    from voicewatch.store import read_connection

    with read_connection(engine) as conn:
        totals = decision_totals(conn, start, end)
    for row in rows:
        values = decision_values(totals.get(row["scope"], DecisionTotals()))
        row["decision_metrics"] = dumps(values)
    return rows


def confirmation_stage(engine: Any, now: int) -> dict[str, Any]:
    """The flow graph's confirmation node: pending drafts as its queue depth, the
    median time to decision (last 24 h) as its latency, decisions per hour."""
    from voicewatch.clock import DAY_MS
    from voicewatch.store import read_connection
    from voicewatch.store.tables import insight_drafts

    with read_connection(engine) as conn:
        pending = conn.execute(
            select(func.count()).where(insight_drafts.c.status == "pending")
        ).scalar_one()
        totals = decision_totals(conn, now - DAY_MS, now)[PLATFORM]
    decided = totals.actions["confirmed"] + totals.actions["rejected"]
    return {
        "stage": "confirmation",
        "label": "Confirmation",
        "href": "/disambiguation",
        "queue_depth": int(pending),
        "avg_latency_ms": median(totals.waits) if totals.waits else None,
        "latency_label": "Median wait",
        "throughput_per_hour": decided / 24,
        "failure_rate": 0.0,
        "health": "green",
    }


def range_figures(engine: Any, since: int, until: int) -> dict[str, Any]:
    """The platform's figures over [since, until) (the metrics page's coach-loop card)."""
    from voicewatch.store import read_connection

    with read_connection(engine) as conn:
        totals = decision_totals(conn, since, until)[PLATFORM]
    return decision_values(totals) | {"decisions": sum(totals.actions.values())}
