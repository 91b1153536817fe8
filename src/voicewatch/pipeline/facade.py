"""The pipeline's front door: what the web, the CLI and staff retries call.

The pipeline owns the ``voice_note_*`` tables; nothing outside it writes
them. Callers submit a note, store an upload, have an artifact reset for a
retry, or carry a coach's decision (confirm, reject, undo, resolve a name)
through these functions, and never reach into the stages, the repository or
the intake themselves (the web is held to it: ``lint-imports``; the health page's
transcriber status comes through here too). (The harness keeps its own tables:
``voice_pipeline_*`` and ``retry_attempts``.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from voicewatch.model import ArtifactStatus
from voicewatch.pipeline.audio_store import MAX_AUDIO_BYTES, UploadError, sniff_audio, store_upload
from voicewatch.pipeline.autoapply import undo_auto_apply
from voicewatch.pipeline.clubs import RecordError, roster
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.decisions import Actor, DecisionError, confirm_draft, reject_draft
from voicewatch.pipeline.disambiguation import resolve_waiting_name
from voicewatch.pipeline.intake import submit_note
from voicewatch.pipeline.transcriber_choice import transcriber_status
from voicewatch.store.tables import voice_note_artifacts

__all__ = [
    "MAX_AUDIO_BYTES",
    "Actor",
    "DecisionError",
    "PipelineContext",
    "RecordError",
    "UploadError",
    "abandon_retry",
    "confirm_draft",
    "lock_artifact",
    "reject_draft",
    "reset_for_retry",
    "resolve_waiting_name",
    "roster",
    "sniff_audio",
    "store_upload",
    "submit_note",
    "transcriber_status",
    "undo_auto_apply",
]


def lock_artifact(conn: Connection, artifact_id: str) -> Any:
    """The artifact's row, locked for the rest of ``conn``'s transaction (None if unknown).

    PostgreSQL takes a row lock; SQLite's write transaction already holds the file.
    """
    query = select(voice_note_artifacts).where(voice_note_artifacts.c.artifact_id == artifact_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def reset_for_retry(
    conn: Connection,
    artifact_id: str,
    *,
    attempt: int,
    status: str,
    completed_stage: str,
    now: int,
) -> None:
    """Reset a failed artifact so that attempt ``attempt`` starts after ``completed_stage``.

    Runs inside the caller's transaction, so the retry's own record and this
    reset commit together or not at all.
    """
    conn.execute(
        update(voice_note_artifacts)
        .where(voice_note_artifacts.c.artifact_id == artifact_id)
        .values(
            attempt=attempt,
            status=status,
            completed_stage=completed_stage,
            current_stage=completed_stage,
            error_message=None,
            error_code=None,
            completed_at=None,
            updated_at=now,
        )
    )


def abandon_retry(conn: Connection, artifact_id: str, reason: str) -> None:
    """Fail the artifact again with ``reason`` (its retry could not be queued)."""
    conn.execute(
        update(voice_note_artifacts)
        .where(voice_note_artifacts.c.artifact_id == artifact_id)
        .values(status=ArtifactStatus.FAILED.value, error_message=reason[:4000])
    )
