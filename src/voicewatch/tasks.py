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
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask

from voicewatch.config import Settings
from voicewatch.store import transient
from voicewatch.store.transient import Backoff, first_line, is_transient

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


#: Huey's own retry count for our tasks: a ceiling only. The real bound is
#: ``QUEUE_RETRY.retries`` (``_retry_later``), counted down from this.
_HUEY_RETRIES = 1000
#: The policy of the queue's retries; a test may swap it for a quicker one.
QUEUE_RETRY: Backoff = transient.QUEUE_RETRY


def _retries_used(task: Any) -> int:
    return _HUEY_RETRIES - int(getattr(task, "retries", _HUEY_RETRIES))


def _retry_later(task: Any, exc: Exception, what: str) -> None:
    """Have Huey run ``task`` again later when ``exc`` is transient and retries remain.

    Raises ``RetryTask`` (with the policy's next delay) or returns when the
    retries are spent; re-raises ``exc`` itself, never retried, when it is not
    transient (a bug does not pass by waiting).
    """
    if not is_transient(exc):
        if task is not None:
            task.retries = 0
        raise exc
    used = _retries_used(task)
    if task is None or used >= QUEUE_RETRY.retries:
        return
    delay = QUEUE_RETRY.delay(used)
    log.warning(
        "voicewatch: %s: transient store error (%s); the queue retries it in %.1f s (%d of %d)",
        what,
        first_line(exc),
        delay,
        used + 1,
        QUEUE_RETRY.retries,
    )
    task.retries -= 1  # Huey adds one back for RetryTask, then takes one on requeue
    raise RetryTask(delay=delay) from exc


@huey.task(name="voicewatch.stage", retries=_HUEY_RETRIES, context=True)
def run_stage_task(stage: str, artifact_id: str, attempt: int, task: Any = None) -> None:
    """Run one pipeline stage of one artifact in this worker process.

    A transient store error before the stage's claim (the claim itself, or the
    read before it) rolled everything back, so the whole task is simply run
    again later by Huey. After the claim, the stage retries its store steps
    in place (``stages``); should one still escape, the retried task finds
    the artifact claimed and does nothing: a stage never runs twice for one
    attempt. When the retries are spent the note fails with the reason.
    """
    from voicewatch.pipeline import runtime
    from voicewatch.pipeline.stages import fail_unavailable, run_stage

    what = f"{stage} of {artifact_id} (attempt {attempt})"
    try:
        ctx = runtime.context()
        did_work = run_stage(ctx, stage, artifact_id, attempt)
    except Exception as exc:
        _retry_later(task, exc, what)
        log.error(
            "voicewatch: %s: giving up, the store stayed unavailable (%s)", what, first_line(exc)
        )
        fail_unavailable(runtime.context(), stage, artifact_id, attempt, exc, _retries_used(task))
        return
    if not did_work and _retries_used(task):
        log.info(
            "voicewatch: %s: retried task found the stage already claimed; nothing to do", what
        )


def _engine() -> object:
    from voicewatch.pipeline import runtime

    return runtime.context().engine


def _periodic(what: str, task: Any, job: Callable[[], object]) -> None:
    """Run a periodic job; a transient store error has Huey run it again later.

    Only an error before the job claimed its slot gets here (after the claim
    ``jobs.run_once`` retries in place), so the retry claims the slot afresh.
    """
    try:
        job()
    except Exception as exc:
        _retry_later(task, exc, what)
        log.error(
            "voicewatch: %s: giving up, the store stayed unavailable (%s)", what, first_line(exc)
        )
        if task is not None:
            task.retries = 0  # spent: Huey must not retry it at once
        raise


@huey.periodic_task(
    crontab(minute="30"), name="voicewatch.aggregate_hourly", retries=_HUEY_RETRIES, context=True
)
def aggregate_hourly_task(task: Any = None) -> None:
    """:30 every hour (UTC): the previous hour's snapshots, and any hour missed."""
    from voicewatch import jobs

    _periodic("hourly aggregation", task, lambda: jobs.hourly_aggregation(_engine()))  # type: ignore[arg-type]


@huey.periodic_task(
    crontab(hour="1", minute="30"),
    name="voicewatch.aggregate_daily",
    retries=_HUEY_RETRIES,
    context=True,
)
def aggregate_daily_task(task: Any = None) -> None:
    """01:30 UTC: yesterday's daily snapshots (from its hourly ones), and any day missed."""
    from voicewatch import jobs

    _periodic("daily aggregation", task, lambda: jobs.daily_aggregation(_engine()))  # type: ignore[arg-type]


@huey.periodic_task(
    crontab(minute="*/5"), name="voicewatch.check_health", retries=_HUEY_RETRIES, context=True
)
def check_health_task(task: Any = None) -> None:
    """Every 5 minutes: the alert rules."""
    from voicewatch import jobs

    _periodic("health check", task, lambda: jobs.health_check(_engine()))  # type: ignore[arg-type]


@huey.periodic_task(
    crontab(minute="*/5"), name="voicewatch.stale_recovery", retries=_HUEY_RETRIES, context=True
)
def stale_recovery_task(task: Any = None) -> None:
    """Every 5 minutes: fail artifacts whose worker died mid-stage, so they can be retried."""
    from voicewatch import jobs

    _periodic("stale recovery", task, lambda: jobs.stale_recovery(_engine()))  # type: ignore[arg-type]


@huey.periodic_task(
    crontab(day_of_week="0", hour="4", minute="30"),
    name="voicewatch.cleanup",
    retries=_HUEY_RETRIES,
    context=True,
)
def cleanup_task(task: Any = None) -> None:
    """Sundays 04:30 UTC: retention."""
    from voicewatch import jobs

    _periodic(
        "retention cleanup",
        task,
        lambda: jobs.retention_cleanup(_engine(), Settings.from_env()),  # type: ignore[arg-type]
    )


@huey.periodic_task(
    crontab(minute="5"), name="voicewatch.expire_drafts", retries=_HUEY_RETRIES, context=True
)
def expire_drafts_task(task: Any = None) -> None:
    """Hourly at :05: pending drafts past the window expire (the coach loop)."""
    from voicewatch.coaching import jobs as coach_jobs

    _periodic(
        "draft expiry",
        task,
        lambda: coach_jobs.expire_drafts_job(_engine(), Settings.from_env()),  # type: ignore[arg-type]
    )


@huey.periodic_task(
    crontab(minute="0"), name="voicewatch.calibrate_thresholds", retries=_HUEY_RETRIES, context=True
)
def calibrate_thresholds_task(task: Any = None) -> None:
    """Hourly; does each day's calibration once, from 02:00 UTC (the coach loop)."""
    from voicewatch.coaching import jobs as coach_jobs

    _periodic(
        "threshold calibration",
        task,
        lambda: coach_jobs.calibration_job(_engine(), Settings.from_env()),  # type: ignore[arg-type]
    )


def enqueue_stage(stage: str, artifact_id: str, attempt: int) -> None:
    """Queue ``stage`` for an artifact (what a finished stage calls for the next one)."""
    run_stage_task(stage, artifact_id, attempt)


def enqueuer(queue_url: str) -> Callable[[str, str, int], None]:
    """An ``enqueue(stage, artifact_id, attempt)`` bound to ``queue_url``."""

    def enqueue(stage: str, artifact_id: str, attempt: int) -> None:
        use_queue(queue_url)
        run_stage_task(stage, artifact_id, attempt)

    return enqueue


def queue_depth() -> int:
    """Tasks waiting in the queue (not counting those being run)."""
    return int(huey.pending_count())
