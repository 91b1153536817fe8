"""The task queue: pipeline stages as Huey tasks, on SQLite (embedded) or Redis.

The queue URL comes from ``VOICEWATCH_QUEUE_URL`` (the CLI's ``--queue`` sets
it before this module is imported): ``sqlite:///path`` for one machine,
``redis://host:port/db`` for many. Each task is a thin wrapper: the work lives
in ``voicewatch.pipeline.stages``, which is idempotent, so a task delivered
twice does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey, crontab

from voicewatch.config import Settings

log = logging.getLogger("voicewatch.tasks")


def build_huey(queue_url: str, *, name: str = "voicewatch") -> Huey:
    """A Huey instance for ``queue_url`` (results are not stored: stages write their own)."""
    if queue_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=queue_url, results=False, utc=True)
    if queue_url.startswith("sqlite:///"):
        path = Path(queue_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=False, utc=True)
    raise ValueError(f"unsupported queue URL: {queue_url} (use sqlite:///FILE or redis://HOST)")


_queue_url = Settings.from_env().queue_url
huey: Huey = build_huey(_queue_url)


def use_queue(queue_url: str) -> Huey:
    """Point the task queue at ``queue_url`` (the tasks stay registered on ``huey``).

    Processes that learn their queue from settings rather than the
    environment (the web app, tests) call this before enqueueing.
    """
    global _queue_url
    if queue_url != _queue_url:
        huey.storage = build_huey(queue_url).storage
        _queue_url = queue_url
    return huey


@huey.task(name="voicewatch.stage")
def run_stage_task(stage: str, artifact_id: str, attempt: int) -> None:
    """Run one pipeline stage of one artifact in this worker process."""
    from voicewatch.pipeline import runtime
    from voicewatch.pipeline.stages import run_stage

    run_stage(runtime.context(), stage, artifact_id, attempt)


def _engine() -> object:
    from voicewatch.pipeline import runtime

    return runtime.context().engine


@huey.periodic_task(crontab(minute="30"), name="voicewatch.aggregate_hourly")
def aggregate_hourly_task() -> None:
    """:30 every hour (UTC): the previous hour's snapshots, and any hour missed."""
    from voicewatch import jobs

    jobs.hourly_aggregation(_engine())  # type: ignore[arg-type]


@huey.periodic_task(crontab(hour="1", minute="30"), name="voicewatch.aggregate_daily")
def aggregate_daily_task() -> None:
    """01:30 UTC: yesterday's daily snapshots (from its hourly ones), and any day missed."""
    from voicewatch import jobs

    jobs.daily_aggregation(_engine())  # type: ignore[arg-type]


@huey.periodic_task(crontab(minute="*/5"), name="voicewatch.check_health")
def check_health_task() -> None:
    """Every 5 minutes: the alert rules."""
    from voicewatch import jobs

    jobs.health_check(_engine())  # type: ignore[arg-type]


@huey.periodic_task(crontab(minute="*/5"), name="voicewatch.stale_recovery")
def stale_recovery_task() -> None:
    """Every 5 minutes: fail artifacts whose worker died mid-stage, so they can be retried."""
    from voicewatch import jobs

    jobs.stale_recovery(_engine())  # type: ignore[arg-type]


@huey.periodic_task(crontab(day_of_week="0", hour="4", minute="30"), name="voicewatch.cleanup")
def cleanup_task() -> None:
    """Sundays 04:30 UTC: retention."""
    from voicewatch import jobs

    jobs.retention_cleanup(_engine(), Settings.from_env())  # type: ignore[arg-type]


def enqueue_stage(stage: str, artifact_id: str, attempt: int) -> None:
    """Queue ``stage`` for an artifact (what a finished stage calls for the next one)."""
    run_stage_task(stage, artifact_id, attempt)


def enqueuer(queue_url: str) -> Callable[[str, str, int], None]:
    """An ``enqueue(stage, artifact_id, attempt)`` bound to ``queue_url``."""

    def enqueue(stage: str, artifact_id: str, attempt: int) -> None:
        use_queue(queue_url)
        run_stage_task(stage, artifact_id, attempt)

    return enqueue


def deferrer(queue_url: str) -> Callable[[str, str, int, int], None]:
    """A ``defer(stage, artifact_id, attempt, eta_ms)`` bound to ``queue_url`` (guard rails).

    A stage put off by a rate limit runs again at ``eta_ms`` (UTC epoch ms).
    """
    from datetime import UTC, datetime

    def defer(stage: str, artifact_id: str, attempt: int, eta_ms: int) -> None:
        use_queue(queue_url)
        eta = datetime.fromtimestamp(eta_ms / 1000, tz=UTC)  # aware: Huey takes it as UTC
        run_stage_task.schedule((stage, artifact_id, attempt), eta=eta)

    return defer


def queue_depth() -> int:
    """Tasks waiting in the queue (not counting those being run)."""
    return int(huey.pending_count())
