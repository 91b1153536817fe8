"""The web process's pipeline context: built on first use, once, on the app's own engine.

Every route that hands work to the pipeline (a note submitted, a coach's
decision) takes it from here and calls the pipeline through its front door,
``voicewatch.pipeline.facade``.
"""

from __future__ import annotations

import threading

from fastapi import Request

from voicewatch.pipeline.facade import PipelineContext
from voicewatch.web.deps import get_engine, get_settings

_lock = threading.Lock()


def pipeline_context(request: Request) -> PipelineContext:
    """The context, built by the first caller (``voicewatch serve`` builds it at start).

    The first requests after start arrive together; they wait on one lock
    while the first builds it (on the app's own engine, migrated at start),
    so no two build a context, an emitter or a migration at the same time.
    Blocking: call it through ``run_in_threadpool``.
    """
    state = request.app.state
    with _lock:
        if getattr(state, "pipeline", None) is None:
            from voicewatch.worker import build_context

            state.pipeline = build_context(get_settings(request), engine=get_engine(request))
        return state.pipeline  # type: ignore[no-any-return]
