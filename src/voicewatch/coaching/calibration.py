"""The daily calibration: each coach's auto-apply threshold from their own decisions.

The seed's ``adjust-insight-thresholds`` job (02:00 UTC). Over the last 30 days
of a coach's decisions by a person (confirmed or rejected), drafts are grouped
into confidence bands of width :data:`BAND`; the threshold becomes the lower
edge of the lowest band from which every band up has a confirm rate of at
least :data:`CONFIRM_RATE` over at least :data:`MIN_SAMPLES` decisions — never
below the floor (``VOICEWATCH_AUTO_APPLY_FLOOR``). No such band: no
auto-apply (threshold 1.0, which no draft's confidence reaches). A coach with
no decisions keeps what they have. Each change is a row of
``coach_threshold_changes`` with the figures that drove it; the unique key
(coach, run key) makes a re-run of one day's slot change nothing twice.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, select

from voicewatch.clock import DAY_MS
from voicewatch.pipeline.autoapply import set_threshold, threshold_of
from voicewatch.store import write_transaction
from voicewatch.store.tables import coach_decisions, coach_threshold_changes

WINDOW_DAYS = 30
BAND = 0.05
MIN_SAMPLES = 5
CONFIRM_RATE = 0.95
#: The threshold that means "never auto-apply" (confidences are at most 0.99).
OFF = 1.0


def band_of(confidence: float) -> float:
    """The lower edge of ``confidence``'s band (0.87 -> 0.85), rounded to avoid float noise."""
    return round(math.floor(round(confidence / BAND, 6)) * BAND, 2)


def threshold_from(bands: dict[float, tuple[int, int]], floor: float) -> float:
    """The threshold for ``{band: (confirmed, decided)}`` (see the module docstring)."""
    chosen = OFF
    for edge in sorted(bands, reverse=True):
        confirmed, decided = bands[edge]
        if decided < MIN_SAMPLES:
            continue  # too few to judge: neither qualifies nor disqualifies
        if confirmed / decided < CONFIRM_RATE:
            break
        chosen = edge
    return OFF if chosen == OFF else max(floor, chosen)


def _history(conn: Connection, now: int) -> dict[tuple[str, str], dict[float, list[int]]]:
    """``{(coach, org): {band: [confirmed, decided]}}`` over the window, by a person."""
    rows = conn.execute(
        select(
            coach_decisions.c.coach_user_id,
            coach_decisions.c.organization_id,
            coach_decisions.c.action,
            coach_decisions.c.ai_confidence,
        ).where(
            coach_decisions.c.subject == "draft",
            coach_decisions.c.action.in_(["confirmed", "rejected"]),
            coach_decisions.c.at_ms > now - WINDOW_DAYS * DAY_MS,
            coach_decisions.c.at_ms <= now,
            coach_decisions.c.ai_confidence.is_not(None),
        )
    )
    out: dict[tuple[str, str], dict[float, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )
    for coach, org, action, confidence in rows:
        counts = out[(coach, org)][band_of(float(confidence))]
        counts[0] += action == "confirmed"
        counts[1] += 1
    return out


def calibrate(engine: Engine, now: int, run_key: str, *, floor: float) -> list[dict[str, Any]]:
    """Set every coach's threshold from their history; returns the changes made."""
    changes: list[dict[str, Any]] = []
    with write_transaction(engine) as conn:
        for (coach, org), raw in sorted(_history(conn, now).items()):
            bands = {edge: (c[0], c[1]) for edge, c in raw.items()}
            new = threshold_from(bands, floor)
            old = threshold_of(conn, coach)
            if old is not None and abs(old - new) < 1e-9:
                continue
            if old is None and new == OFF:
                continue  # never auto-applied, still not: nothing to record
            done = conn.execute(
                select(coach_threshold_changes.c.id).where(
                    coach_threshold_changes.c.coach_user_id == coach,
                    coach_threshold_changes.c.run_key == run_key,
                )
            ).first()
            if done:
                continue
            figures = {
                "window_days": WINDOW_DAYS,
                "floor": floor,
                "bands": {
                    f"{edge:.2f}": {"confirmed": c, "decided": d}
                    for edge, (c, d) in sorted(bands.items())
                },
            }
            set_threshold(conn, coach, org, new, now)
            row = {
                "coach_user_id": coach,
                "organization_id": org,
                "previous": old,
                "threshold": new,
                "figures": json.dumps(figures, sort_keys=True),
                "run_key": run_key,
                "at_ms": now,
            }
            conn.execute(coach_threshold_changes.insert().values(**row))
            changes.append(row | {"figures": figures})
    return changes
