"""The pipeline's per-process context: store, emitter, providers and the queue.

Built once per process by the composition root (``voicewatch.worker``), which
hands it the enqueuer and the retry recorder: the pipeline knows neither the
task queue nor the harness's tables. "Once" holds under concurrency: the
context is installed before a worker's threads start, and ``context()`` only
reads the slot (it never builds one from the environment).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine

from voicewatch.config import Settings
from voicewatch.pipeline.context import PipelineContext, RetryRecorder

_lock = threading.Lock()
_context: PipelineContext | None = None


def build_context(
    settings: Settings,
    *,
    enqueue: Callable[[str, str, int], None],
    finish_retry: RetryRecorder | None = None,
    engine: Engine | None = None,
    defer: Callable[[str, str, int, int], None] | None = None,
) -> PipelineContext:
    """A pipeline context for ``settings`` that queues stages with ``enqueue``.

    ``finish_retry`` records how a retry ended (the harness owns that table);
    ``engine`` is a store already opened (and migrated) by the caller, e.g. the
    web app's; by default one is opened here. ``defer(stage, artifact_id, attempt,
    eta_ms)`` queues a rate-limited stage again for later (None: it fails instead).
    """
    from voicewatch.emitter import Monitor
    from voicewatch.pipeline.providers import extractor_for, transcriber_for
    from voicewatch.store import open_store

    if engine is None:
        engine = open_store(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    monitor = Monitor(
        database_url=settings.database_url, flush_interval=max(settings.emit_flush_ms, 1) / 1000
    )
    return PipelineContext(
        engine=engine,
        emit=monitor.emit,
        transcribe=transcriber_for(settings, engine, monitor.emit),
        extract=extractor_for(settings, engine, monitor.emit),
        enqueue=enqueue,
        finish_retry=finish_retry,
        monitor=monitor,
        stage_delay_ms=settings.stage_delays(),
        defer=defer,
        rate_limit_horizon_ms=settings.rate_limit_horizon_ms,
    )


def context() -> PipelineContext:
    """This process's context, as installed by its composition root."""
    with _lock:
        if _context is None:
            raise RuntimeError(
                "no pipeline context in this process: voicewatch.worker.install() wires one"
            )
        return _context


def install(ctx: PipelineContext | None) -> None:
    """Make ``ctx`` this process's context; ``None`` forgets it (a test cleaning up)."""
    global _context
    with _lock:
        _context = ctx
