"""The composition root of every process: the one place that wires the parts together.

The pipeline knows neither the task queue nor the harness's tables, the jobs
know no pipeline, and the tasks read no settings: this module hands each what
it needs. A process (the CLI's ``worker``, ``submit``, ``simulate``, the web
app, the demo, a test) builds its pipeline context here, from settings it was
given, never from its own environment:

- ``build_context``: a pipeline context whose enqueuer is the Huey queue of the
  settings (or one given) and whose retry recorder is the harness's;
- ``install``: make it this process's context, point the task queue at the
  settings' queue and wire the periodic jobs (store, settings, recovery);
- ``run_worker``: the consumer loop of ``voicewatch worker``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine

from voicewatch import retry, tasks
from voicewatch.config import Settings
from voicewatch.pipeline import runtime
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.recovery import recover


def build_context(
    settings: Settings,
    *,
    enqueue: Callable[[str, str, int], None] | None = None,
    engine: Engine | None = None,
) -> PipelineContext:
    """A pipeline context for ``settings``; ``enqueue`` defaults to the settings' Huey queue.

    ``engine`` is a store already opened (and migrated) by the caller, e.g. the
    web app's; by default one is opened here.
    """
    return runtime.build_context(
        settings,
        enqueue=enqueue if enqueue is not None else tasks.enqueuer(settings.queue_url),
        finish_retry=retry.finish_retry,
        engine=engine,
        # guard rails: a rate-limited stage runs later on the same queue
        defer=tasks.deferrer(settings.queue_url) if enqueue is None else None,
    )


def install(settings: Settings, ctx: PipelineContext) -> PipelineContext:
    """Make ``ctx`` this process's context: the stage tasks run with it, the jobs with its store."""
    tasks.use_queue(settings.queue_url)
    runtime.install(ctx)
    tasks.wire(
        tasks.Wiring(
            engine=ctx.engine, settings=settings, recover=lambda now: recover(ctx, now=now)
        )
    )
    return ctx


def uninstall() -> None:
    """Forget this process's context and wiring (a test cleaning up after itself)."""
    runtime.install(None)
    tasks.wire(None)


def start(settings: Settings, engine: Engine | None = None) -> PipelineContext:
    """Build and install this process's context (the CLI's commands that run the pipeline)."""
    return install(settings, build_context(settings, engine=engine))


def run_worker(
    settings: Settings,
    engine: Engine,
    *,
    workers: int,
    periodic: bool,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Run queued stages, retries and (when ``periodic``) the periodic jobs, until stopped.

    ``on_ready`` is called once the context is installed, before the first task.
    """
    from huey.consumer import Consumer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("huey").setLevel(logging.WARNING)  # one line per task is noise
    # The store is migrated (once, under its lock) and the context built before
    # the first task, so the worker threads never race to do either.
    start(settings, engine)
    on_ready()
    # An idle worker polls the SQLite queue at most 1 s apart (Huey's default
    # backs off to 10 s, which a note or a retried task would wait out); Redis
    # blocks on the queue instead and is not affected.
    Consumer(
        tasks.huey, workers=workers, worker_type="thread", periodic=periodic, max_delay=1.0
    ).run()


def enqueuer(settings: Settings) -> Callable[[str, str, int], None]:
    """``enqueue(stage, artifact_id, attempt)`` onto the settings' queue (the web's retries)."""
    return tasks.enqueuer(settings.queue_url)
