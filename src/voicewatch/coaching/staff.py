"""The staff's view of the coach loop: the disambiguation queue and the thresholds.

One read model for the page ``/disambiguation``: every coach's names waiting for a
person (by organization and coach, oldest first, with the candidates and the
claim's text), each coach's current auto-apply threshold, and the recent changes
the calibration made with the figures behind them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select

from voicewatch.coaching.inbox import waiting_names
from voicewatch.names import coach_labels
from voicewatch.store import read_connection
from voicewatch.store.tables import coach_threshold_changes, coach_thresholds


def queue_view(
    engine: Engine, *, organization_id: str | None = None, limit: int = 200
) -> dict[str, Any]:
    """The page's context: ``names`` (sorted by organization, coach, age), ``thresholds``
    and ``changes`` (newest first)."""
    names = waiting_names(engine, None, organization_id=organization_id, limit=limit)
    names.sort(key=lambda n: (n["organization_name"], n["coach_user_id"], n["created_at"]))
    with read_connection(engine) as conn:
        current = [dict(r._mapping) for r in conn.execute(select(coach_thresholds))]
        changes = [
            dict(r._mapping)
            for r in conn.execute(
                select(coach_threshold_changes)
                .order_by(coach_threshold_changes.c.id.desc())
                .limit(50)
            )
        ]
        labels = coach_labels(conn, [r["coach_user_id"] for r in current + changes])
    for row in current + changes:
        row["coach"] = labels.get(row["coach_user_id"])
    for change in changes:
        change["figures"] = json.loads(change["figures"] or "{}")
    current.sort(key=lambda r: (r["organization_id"], r["coach_user_id"]))
    return {"names": names, "thresholds": current, "changes": changes}


def draft_decisions(engine: Engine, artifact_id: str) -> dict[str, dict[str, Any]]:
    """Per draft of one artifact: its decisions (oldest first) and its applied insight.

    For the artifact detail: who decided what, for whom (``coach``: the coach's
    label, one query for them all), and the insight that is on the player's
    record now (None when none, or when it was undone).
    """
    from voicewatch.store.tables import coach_decisions, voice_note_insights

    out: dict[str, dict[str, Any]] = {}
    with read_connection(engine) as conn:
        for row in conn.execute(
            select(coach_decisions)
            .where(
                coach_decisions.c.artifact_id == artifact_id, coach_decisions.c.subject == "draft"
            )
            .order_by(coach_decisions.c.at_ms, coach_decisions.c.id)
        ):
            entry = out.setdefault(row.subject_id, {"decisions": [], "insight": None})
            entry["decisions"].append(dict(row._mapping))
        for row in conn.execute(
            select(voice_note_insights).where(
                voice_note_insights.c.artifact_id == artifact_id,
                voice_note_insights.c.undone_at.is_(None),
            )
        ):
            out.setdefault(row.draft_id, {"decisions": [], "insight": None})["insight"] = dict(
                row._mapping
            )
        decisions = [d for entry in out.values() for d in entry["decisions"]]
        labels = coach_labels(conn, (d["coach_user_id"] for d in decisions))
    for decision in decisions:
        decision["coach"] = labels.get(decision["coach_user_id"])
    return out
