"""A real pipeline whose guard rails run on a test clock, with a queue that honours deferrals.

Time is a parameter: the guards (budgets, rate limits, breaker) judge by
``Clock``; ``DeferringDriver`` keeps a deferred stage until its time and, when
nothing else is left to run, moves the clock to it instead of sleeping.
"""

from __future__ import annotations

from typing import Any

from pipeline_helpers import QueueDriver, make_pipeline
from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.providers import extractor_for, transcriber_for


class Clock:
    """Epoch ms that move only when told."""

    def __init__(self, start: int | None = None) -> None:
        self.now = now_ms() if start is None else start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class DeferringDriver(QueueDriver):
    """``QueueDriver`` plus ``defer``: stages put off until a time on the clock."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.later: list[tuple[int, str, str, int]] = []

    def defer(self, stage: str, artifact_id: str, attempt: int, eta_ms: int) -> None:
        self.later.append((eta_ms, stage, artifact_id, attempt))

    def release_due(self) -> None:
        """Queue the deferred stages whose time has come on the clock."""
        due = [item for item in self.later if item[0] <= self.clock.now]
        self.later = [item for item in self.later if item[0] > self.clock.now]
        for _eta, stage, artifact_id, attempt in sorted(due):
            self.enqueue(stage, artifact_id, attempt)

    def run_all(self, max_rounds: int = 10_000) -> None:
        """Run everything, deferred stages included, moving the clock forward as needed."""
        for _ in range(max_rounds):
            self.drain()
            if not self.later:
                return
            self.later.sort()
            eta = self.later[0][0]
            self.clock.now = max(self.clock.now, eta)
            due = [item for item in self.later if item[0] <= self.clock.now]
            self.later = [item for item in self.later if item[0] > self.clock.now]
            for _eta, stage, artifact_id, attempt in due:
                self.enqueue(stage, artifact_id, attempt)
        raise AssertionError("the pipeline did not settle")


def clocked_pipeline(
    db_url: str, clock: Clock, **settings: Any
) -> tuple[PipelineContext, DeferringDriver]:
    """``make_pipeline`` with the guards on ``clock`` and deferrals kept by the driver."""
    ctx, _plain = make_pipeline(db_url, **settings)
    driver = DeferringDriver(clock)
    driver.ctx = ctx
    config = Settings(database_url=db_url, **settings)
    ctx.enqueue = driver.enqueue
    ctx.defer = driver.defer
    ctx.rate_limit_horizon_ms = config.rate_limit_horizon_ms
    ctx.transcribe = transcriber_for(config, ctx.engine, ctx.emit, clock=clock)
    ctx.extract = extractor_for(config, ctx.engine, ctx.emit, clock=clock)
    return ctx, driver


def text_note(ctx: PipelineContext, text: str, *, fail_plan: str | None = None) -> str:
    """Store a text note for org_clg and queue its first stage; its artifact id."""
    from voicewatch.pipeline.stages import emit_received

    artifact = repo.create_artifact(
        ctx.engine,
        organization_id="org_clg",
        coach_user_id="coach_1",
        source_channel="app",
        text=text,
        fail_plan=fail_plan,
    )
    emit_received(ctx, artifact)
    ctx.enqueue("transcription", artifact["artifact_id"], 0)
    return str(artifact["artifact_id"])
