"""The coach loop's periodic jobs, run once per slot however many workers run.

Both go through ``voicewatch.jobs.run_once`` (a ``job_runs`` claim that one
worker wins). Both are scheduled hourly (``tasks``), so a missed slot is
caught up within the hour:

- draft expiry: one slot per hour; the cutoff catches up by itself;
- calibration: one slot per day, starting at 02:00 UTC (the seed's
  ``adjust-insight-thresholds``): from 02:00 on day D until 01:59 on D+1 the slot
  is D, so the first hourly run at or after 02:00 does D's calibration and the
  others find it claimed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from voicewatch.clock import HOUR_MS, hour_window, now_ms, to_datetime
from voicewatch.config import Settings
from voicewatch.jobs import run_once

CALIBRATION_HOUR_UTC = 2


def calibration_key(now: int) -> str:
    """The day whose 02:00 UTC slot ``now`` falls in (YYYY-MM-DD)."""
    return to_datetime(now - CALIBRATION_HOUR_UTC * HOUR_MS).strftime("%Y-%m-%d")


def expire_drafts_job(engine: Engine, settings: Settings, now: int | None = None) -> Any:
    """Expire the pending drafts older than the window, once per hour slot."""
    from voicewatch.coaching.expiry import expire_drafts

    now = now_ms() if now is None else now
    return run_once(
        engine,
        "expire_drafts",
        hour_window(now),
        lambda: expire_drafts(engine, now, days=settings.draft_expiry_days),
    )


def calibration_job(engine: Engine, settings: Settings, now: int | None = None) -> Any:
    """Set each coach's auto-apply threshold from their history, once per day slot."""
    from voicewatch.coaching.calibration import calibrate

    now = now_ms() if now is None else now
    key = calibration_key(now)
    return run_once(
        engine,
        "calibrate_thresholds",
        key,
        lambda: calibrate(engine, now, key, floor=settings.auto_apply_floor),
    )
