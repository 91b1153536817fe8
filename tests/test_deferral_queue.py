"""A deferred stage goes onto the real Huey queue (embedded SQLite) for its UTC time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from voicewatch import tasks
from voicewatch.clock import now_ms
from voicewatch.config import Settings


def test_defer_schedules_the_stage_for_its_utc_time(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vw.db'}")
    previous = tasks._queue_url
    try:
        huey = tasks.use_queue(settings.queue_url)
        eta_ms = (now_ms() // 60_000 + 2) * 60_000
        tasks.deferrer(settings.queue_url)("claims_extraction", "art_1", 0, eta_ms)
        # queued with its eta; the consumer moves it to the schedule until that time
        (task,) = huey.pending()
        assert task.args == ("claims_extraction", "art_1", 0)
        # Huey keeps a naive UTC time: it must be the eta itself, whatever the machine's TZ
        assert task.eta.replace(tzinfo=UTC) == datetime.fromtimestamp(eta_ms / 1000, tz=UTC)
        assert task.eta > datetime.now(UTC).replace(tzinfo=None)  # not runnable yet
    finally:
        tasks.use_queue(previous)
