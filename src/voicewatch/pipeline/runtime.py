"""The pipeline's per-process context: store, emitter, providers and the queue.

Built once per process from the settings, so stages never open their own
connections or monitors. "Once" holds under concurrency: the first callers
of ``context()`` (a worker's threads) wait on one lock while it is built.
"""

from __future__ import annotations

import threading
from typing import Any

from voicewatch.config import Settings
from voicewatch.pipeline.stages import PipelineContext

_lock = threading.Lock()
_context: PipelineContext | None = None


def build_context(
    settings: Settings, *, enqueue: Any = None, engine: Any = None
) -> PipelineContext:
    """A pipeline context for ``settings``; ``enqueue`` defaults to the Huey queue.

    ``engine`` is a store already opened (and migrated) by the caller, e.g. the
    web app's; by default one is opened here.
    """
    from voicewatch.emitter import Monitor
    from voicewatch.pipeline.providers import extractor_for, transcriber_for
    from voicewatch.store import open_store

    if engine is None:
        engine = open_store(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    monitor = Monitor(
        database_url=settings.database_url, flush_interval=max(settings.emit_flush_ms, 1) / 1000
    )
    defer = None
    if enqueue is None:
        from voicewatch.tasks import deferrer, enqueuer

        enqueue = enqueuer(settings.queue_url)
        defer = deferrer(settings.queue_url)  # guard rails: rate-limited stages run later
    return PipelineContext(
        engine=engine,
        emit=monitor.emit,
        transcribe=transcriber_for(settings, engine, monitor.emit),
        extract=extractor_for(settings, engine, monitor.emit),
        enqueue=enqueue,
        monitor=monitor,
        stage_delay_ms=settings.stage_delays(),
        defer=defer,
        rate_limit_horizon_ms=settings.rate_limit_horizon_ms,
    )


def context() -> PipelineContext:
    """This process's context, built on first use from the environment."""
    global _context
    with _lock:
        if _context is None:
            _context = build_context(Settings.from_env())
        return _context


def install(ctx: PipelineContext | None) -> None:
    """Make ``ctx`` this process's context (for processes that build their own: demo, tests).

    ``None`` forgets it, so the next ``context()`` builds one from the environment
    (a test cleaning up after itself).
    """
    global _context
    with _lock:
        _context = ctx
