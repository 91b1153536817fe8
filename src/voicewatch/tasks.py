"""The task queue: pipeline stages and periodic jobs as Huey tasks, on SQLite or Redis.

Importing this module reads no settings: the tasks are registered on a queue
held in memory until the process's composition root (``voicewatch.worker``)
points it at the settings' queue URL (``use_queue``: ``sqlite:///path`` for
one machine, ``redis://host:port/db`` for many) and wires what the tasks run
with (``wire``: the pipeline context, the store, the settings). Each task is
a thin wrapper: the work lives in ``voicewatch.pipeline.stages`` and
``voicewatch.jobs``, both idempotent, so a task delivered twice does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask
from sqlalchemy import Engine

from voicewatch import jobs
from voicewatch.config import Settings
from voicewatch.pipeline import runtime
from voicewatch.pipeline.stages import fail_unavailable, run_stage
from voicewatch.store import transient
from voicewatch.store.transient import Backoff, first_line, is_transient

log = logging.getLogger("voicewatch.tasks")


def build_huey(queue_url: str, *, name: str = "voicewatch") -> Huey:
    """A Huey instance for ``queue_url`` (results are not stored: stages write their own)."""
    if queue_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=queue_url, results=False, utc=True)
    if queue_url == MEMORY_QUEUE:
        return MemoryHuey(name, results=False, utc=True)
    if queue_url.startswith("sqlite:///"):
        path = Path(queue_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=False, utc=True)
    raise ValueError(f"unsupported queue URL: {queue_url} (use sqlite:///FILE or redis://HOST)")


#: Until ``use_queue``: nothing is read at import, and nothing queued here leaves the process.
MEMORY_QUEUE = "memory:"
_queue_url = MEMORY_QUEUE
huey: Huey = build_huey(_queue_url)


@dataclass(frozen=True)
class Wiring:
    """What the periodic tasks run with, handed over by the composition root."""

    engine: Engine
    settings: Settings
    #: the pipeline's stale-stage recovery, bound to this process's context: ``recover(now)``
    recover: Callable[[int], Any]


_wiring: Wiring | None = None


def wire(wiring: Wiring | None) -> None:
    """Give the periodic tasks their store and settings (``None`` forgets them)."""
    global _wiring
    _wiring = wiring


def _wired() -> Wiring:
    if _wiring is None:
        raise RuntimeError("the periodic tasks are not wired: voicewatch.worker.install() does it")
    return _wiring


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
    _periodic("hourly aggregation", task, lambda: jobs.hourly_aggregation(_wired().engine))


@huey.periodic_task(
    crontab(hour="1", minute="30"),
    name="voicewatch.aggregate_daily",
    retries=_HUEY_RETRIES,
    context=True,
)
def aggregate_daily_task(task: Any = None) -> None:
    """01:30 UTC: yesterday's daily snapshots (from its hourly ones), and any day missed."""
    _periodic("daily aggregation", task, lambda: jobs.daily_aggregation(_wired().engine))


@huey.periodic_task(
    crontab(minute="*/5"), name="voicewatch.check_health", retries=_HUEY_RETRIES, context=True
)
def check_health_task(task: Any = None) -> None:
    """Every 5 minutes: the alert rules."""

    def check() -> Any:
        wired = _wired()
        return jobs.health_check(wired.engine, wired.settings.alert_thresholds)

    _periodic("health check", task, check)


@huey.periodic_task(
    crontab(minute="*/5"), name="voicewatch.stale_recovery", retries=_HUEY_RETRIES, context=True
)
def stale_recovery_task(task: Any = None) -> None:
    """Every 5 minutes: fail artifacts whose worker died mid-stage, so they can be retried."""

    def recover() -> Any:
        wired = _wired()
        return jobs.stale_recovery(wired.engine, wired.recover)

    _periodic("stale recovery", task, recover)


@huey.periodic_task(
    crontab(day_of_week="0", hour="4", minute="30"),
    name="voicewatch.cleanup",
    retries=_HUEY_RETRIES,
    context=True,
)
def cleanup_task(task: Any = None) -> None:
    """Sundays 04:30 UTC: retention."""

    def clean() -> Any:
        wired = _wired()
        return jobs.retention_cleanup(wired.engine, wired.settings)

    _periodic("retention cleanup", task, clean)


@huey.periodic_task(
    crontab(minute="5"), name="voicewatch.expire_drafts", retries=_HUEY_RETRIES, context=True
)
def expire_drafts_task(task: Any = None) -> None:
    """Hourly at :05: pending drafts past the window expire (the coach loop)."""
    from voicewatch.coaching import jobs as coach_jobs

    def expire() -> Any:
        wired = _wired()
        return coach_jobs.expire_drafts_job(wired.engine, wired.settings)

    _periodic("draft expiry", task, expire)


@huey.periodic_task(
    crontab(minute="0"), name="voicewatch.calibrate_thresholds", retries=_HUEY_RETRIES, context=True
)
def calibrate_thresholds_task(task: Any = None) -> None:
    """Hourly; does each day's calibration once, from 02:00 UTC (the coach loop)."""
    from voicewatch.coaching import jobs as coach_jobs

    def calibrate() -> Any:
        wired = _wired()
        return coach_jobs.calibration_job(wired.engine, wired.settings)

    _periodic("threshold calibration", task, calibrate)


@huey.periodic_task(
    crontab(minute="*"), name="voicewatch.simulated_coaches", retries=_HUEY_RETRIES, context=True
)
def simulated_coaches_task(task: Any = None) -> None:
    """Every minute: the demo clubs' coaches answer what is due (``simulate``, ``demo``).

    Nothing happens in a store without the demo coaches (``simulate_coaches``).
    """
    from voicewatch.simulate_coaches import simulated_coaches_job

    _periodic("simulated coaches", task, lambda: simulated_coaches_job(runtime.context()))


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
