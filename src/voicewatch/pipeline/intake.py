"""Taking a note in: store the artifact, say ``artifact_received``, queue transcription."""

from __future__ import annotations

from typing import Any

from voicewatch.model import Stage
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.stages import emit_received


def submit_note(
    ctx: PipelineContext,
    *,
    organization_id: str,
    coach_user_id: str,
    source_channel: str = "app",
    text: str | None = None,
    audio_path: str | None = None,
    fail_plan: str | None = None,
) -> dict[str, Any]:
    """Accept one voice note or text message; returns the new artifact's row."""
    artifact = repo.create_artifact(
        ctx.engine,
        organization_id=organization_id,
        coach_user_id=coach_user_id,
        source_channel=source_channel,
        text=text,
        audio_path=audio_path,
        fail_plan=fail_plan,
    )
    emit_received(ctx, artifact)
    ctx.enqueue(Stage.TRANSCRIPTION.value, artifact["artifact_id"], 0)
    return artifact
