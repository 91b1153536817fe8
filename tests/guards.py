"""What the guard tests share (circuit breaker, budgets, rate limits): an ``emit()`` that
records, and two processes that start their work at the same moment.

The guards report through the ``emit`` callable the pipeline passes them; a
:class:`Recorder` stands in for it so a test can read exactly what was emitted, in
order. The ``recorded`` fixture (``conftest.py``) hands each test a fresh one; child
processes make their own.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

Events = list[tuple[str, dict[str, Any]]]


class Recorder:
    """Our own emit(): appends ``(event_type, fields)`` to :attr:`events`."""

    def __init__(self) -> None:
        self.events: Events = []

    def __call__(self, event_type: str, **fields: Any) -> None:
        self.events.append((event_type, fields))

    def types(self) -> list[str]:
        """The event types emitted so far, in order."""
        return [e[0] for e in self.events]


def run_two(target: Callable[..., None], url: str, *extra: Any) -> list[Any]:
    """Run ``target(url, barrier, *extra, results)`` in two spawned processes; their outputs.

    Both wait on ``barrier`` before their first write, so their writes race for real;
    each puts one result on the ``results`` queue.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, barrier, *extra, results)) for _ in "ab"]
    for proc in procs:
        proc.start()
    outputs = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return outputs
