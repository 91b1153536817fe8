"""What a stage runs with (``PipelineContext``) and the errors a stage can end in.

Apart from ``stages`` so that the stage logic (``stages``: claim, fail,
hand on) and the work of each stage (``steps``) can both use it without
importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine

from voicewatch.store.transient import retrying

T = TypeVar("T")


class StageError(Exception):
    """A stage could not do its work; ``code`` is machine-readable."""

    def __init__(self, message: str, code: str = "stage_error") -> None:
        super().__init__(message)
        self.error_code = code


class InjectedFault(StageError):
    """A simulated transient fault (``simulate --failure-rate``): the retry succeeds."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"simulated transient fault in {stage}", "injected_fault")


class RetryRecorder(Protocol):
    """``(engine, artifact_id, attempt, ok=, error=)``: the harness's end-of-retry writer."""

    def __call__(
        self, engine: Engine, artifact_id: str, attempt: int, *, ok: bool, error: str | None = None
    ) -> None: ...


@dataclass
class PipelineContext:
    """What the stages need, built once per worker process."""

    engine: Engine
    emit: Callable[..., Any]
    #: (artifact row, roster names as hints) -> (Transcript, cost in USD)
    transcribe: Callable[[dict[str, Any], list[str]], tuple[Any, float]]
    #: (artifact row, transcript text, roster player names) -> (claims, cost in USD)
    extract: Callable[[dict[str, Any], str, list[str]], tuple[list[Any], float]]
    enqueue: Callable[[str, str, int], None]
    #: records how retry ``attempt`` ended in the harness's ``retry_attempts`` (None: no retries)
    finish_retry: RetryRecorder | None = None
    stage_delay_ms: dict[str, int] = field(default_factory=dict)
    monitor: Any = None  # the emitter behind ``emit``, flushed by tests and at exit
    # --- guard rails: a rate-limited stage is queued again for later (pipeline/deferral.py)
    #: (stage, artifact_id, attempt, run at epoch ms); None: a rate-limited stage fails
    defer: Callable[[str, str, int, int], None] | None = None
    rate_limit_horizon_ms: int = 15 * 60_000


def in_place(work: Callable[[], T], artifact_id: str, attempt: int, step: str) -> T:
    """A store step of a claimed stage, retried here on transient errors (see ``stages``)."""
    return retrying(work, f"{artifact_id} (attempt {attempt}): {step}")
