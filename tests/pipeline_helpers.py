"""Building a real pipeline for tests: an organization with a roster, and a queue we drain.

``QueueDriver`` is a plain in-process queue: stages enqueue their successor on
it and ``drain()`` runs them in order, so a test can walk an artifact through
every stage deterministically. The Huey-backed path is tested separately.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from voicewatch.config import Settings
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.stages import run_stage
from voicewatch.worker import build_context

ROSTER_CSV = """name,team,aliases
Sean Murphy,U14 Hurling,Murph
Ciarán O'Brien,U14 Hurling,
Aoife Kelly,U14 Camogie,
Jack Walsh,U14 Hurling,Walshy
Liam Byrne,Senior Football,
"""


class QueueDriver:
    """An in-process stand-in for Huey's queue: (stage, artifact_id, attempt) tuples."""

    def __init__(self) -> None:
        self.pending: deque[tuple[str, str, int]] = deque()
        self.ctx: PipelineContext | None = None

    def enqueue(self, stage: str, artifact_id: str, attempt: int) -> None:
        self.pending.append((stage, artifact_id, attempt))

    def drain(self, limit: int = 1000) -> int:
        assert self.ctx is not None
        ran = 0
        while self.pending and ran < limit:
            run_stage(self.ctx, *self.pending.popleft())
            ran += 1
        return ran


def make_pipeline(db_url: str, **settings: Any) -> tuple[PipelineContext, QueueDriver]:
    driver = QueueDriver()
    ctx = build_context(Settings(database_url=db_url, **settings), enqueue=driver.enqueue)
    driver.ctx = ctx
    clubs.upsert_organization(ctx.engine, "org_clg", "Clonmore GAA")
    clubs.import_roster(ctx.engine, "org_clg", ROSTER_CSV)
    return ctx, driver


def run_note(
    ctx: PipelineContext,
    driver: QueueDriver,
    text: str,
    *,
    coach_user_id: str = "coach_1",
    source_channel: str = "app",
    fail_plan: str | None = None,
) -> dict[str, Any]:
    """A text note of ``org_clg`` stored, queued at transcription and drained: its row after.

    Stored with ``create_artifact`` (no ``artifact_received``), as a test that reads
    only the stages' own events wants it; ``fail_plan`` names a stage to fail once.
    """
    artifact = repo.create_artifact(
        ctx.engine,
        organization_id="org_clg",
        coach_user_id=coach_user_id,
        source_channel=source_channel,
        text=text,
        fail_plan=fail_plan,
    )
    driver.enqueue("transcription", artifact["artifact_id"], 0)
    driver.drain()
    row = repo.get_artifact(ctx.engine, artifact["artifact_id"])
    assert row is not None
    return row
