"""The pipeline's own records: artifacts and their outputs (clubs and rosters: ``clubs``).

Every write that a stage makes is idempotent per artifact and attempt: ids are
derived from the artifact, the attempt and an ordinal, and a stage's outputs
are replaced as a whole inside one transaction (all but what a person decided:
``outputs``). A stage that runs twice therefore leaves exactly what one run leaves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select, update

from voicewatch.clock import now_ms
from voicewatch.model import ArtifactStatus
from voicewatch.pipeline.clubs import (
    SOURCE_CHANNELS,
    RecordError,
    ensure_coach,
    organization_exists,
)
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import (
    insight_drafts,
    voice_note_artifacts,
    voice_note_claims,
    voice_note_entity_resolutions,
    voice_note_transcripts,
)

# --- artifacts ----------------------------------------------------------------------------


def new_artifact_id() -> str:
    return f"art_{uuid.uuid4().hex[:20]}"


def create_artifact(
    engine: Engine,
    *,
    organization_id: str,
    coach_user_id: str,
    source_channel: str,
    text: str | None = None,
    audio_path: str | None = None,
    fail_plan: str | None = None,
    artifact_id: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Store a new note as an artifact in status ``received``; returns its row."""
    if source_channel not in SOURCE_CHANNELS:
        raise RecordError(f"source_channel must be one of {', '.join(SOURCE_CHANNELS)}")
    if (text is None) == (audio_path is None):
        raise RecordError("a note is either text or audio")
    if text is not None and not text.strip():
        raise RecordError("the text is empty")
    if not organization_exists(engine, organization_id):
        raise RecordError(f"unknown organization: {organization_id}")
    stamp = now_ms() if now is None else now
    row: dict[str, Any] = {
        "artifact_id": artifact_id or new_artifact_id(),
        "voice_note_id": None,
        "organization_id": organization_id,
        "coach_user_id": coach_user_id,
        "source_channel": source_channel,
        "kind": "text" if text is not None else "audio",
        "text": text,
        "audio_path": audio_path,
        "status": ArtifactStatus.RECEIVED.value,
        "current_stage": "ingestion",
        "completed_stage": "ingestion",
        "attempt": 0,
        "fail_plan": fail_plan,
        "created_at": stamp,
        "updated_at": stamp,
    }
    row["voice_note_id"] = "vn_" + row["artifact_id"][4:]
    ensure_coach(engine, coach_user_id, organization_id)
    with write_transaction(engine) as conn:
        conn.execute(voice_note_artifacts.insert().values(**row))
    return row


def get_artifact(engine: Engine, artifact_id: str) -> dict[str, Any] | None:
    with read_connection(engine) as conn:
        row = conn.execute(
            select(voice_note_artifacts).where(voice_note_artifacts.c.artifact_id == artifact_id)
        ).first()
    return dict(row._mapping) if row else None


def claim_stage(
    engine: Engine,
    artifact_id: str,
    attempt: int,
    *,
    stage: str,
    expected_completed: str,
    status: str,
) -> dict[str, Any] | None:
    """Atomically take an artifact into ``stage`` for ``attempt``.

    Succeeds (returns the updated row) only when the artifact is on that
    attempt and the previous stage is the last one completed; a duplicate or
    stale task gets None and does nothing.
    """
    stamp = now_ms()
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(voice_note_artifacts)
            .where(
                voice_note_artifacts.c.artifact_id == artifact_id,
                voice_note_artifacts.c.attempt == attempt,
                voice_note_artifacts.c.completed_stage == expected_completed,
                voice_note_artifacts.c.status.not_in(
                    [ArtifactStatus.FAILED.value, ArtifactStatus.COMPLETED.value]
                ),
                func.coalesce(voice_note_artifacts.c.current_stage, "") != stage,
            )
            .values(current_stage=stage, status=status, updated_at=stamp)
        )
        if result.rowcount != 1:
            return None
        row = conn.execute(
            select(voice_note_artifacts).where(voice_note_artifacts.c.artifact_id == artifact_id)
        ).first()
    return dict(row._mapping) if row else None


def finish_stage(
    conn: Connection, artifact_id: str, attempt: int, *, stage: str, status: str
) -> bool:
    """Mark ``stage`` done for ``attempt`` (inside the stage's output transaction)."""
    stamp = now_ms()
    values: dict[str, Any] = {"completed_stage": stage, "status": status, "updated_at": stamp}
    if status == ArtifactStatus.COMPLETED.value:
        values["completed_at"] = stamp
    result = conn.execute(
        update(voice_note_artifacts)
        .where(
            voice_note_artifacts.c.artifact_id == artifact_id,
            voice_note_artifacts.c.attempt == attempt,
            voice_note_artifacts.c.current_stage == stage,
        )
        .values(**values)
    )
    return result.rowcount == 1


def fail_artifact(
    engine: Engine, artifact_id: str, attempt: int, *, stage: str, message: str, code: str
) -> str | None:
    """Mark the artifact failed at ``stage``; returns its previous status (None if stale)."""
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(voice_note_artifacts.c.status).where(
                voice_note_artifacts.c.artifact_id == artifact_id,
                voice_note_artifacts.c.attempt == attempt,
            )
        ).first()
        if row is None or row.status in (
            ArtifactStatus.FAILED.value,
            ArtifactStatus.COMPLETED.value,
        ):
            return None
        conn.execute(
            update(voice_note_artifacts)
            .where(voice_note_artifacts.c.artifact_id == artifact_id)
            .values(
                status=ArtifactStatus.FAILED.value,
                current_stage=stage,
                error_message=message[:4000],
                error_code=code[:128],
                updated_at=now_ms(),
            )
        )
        return str(row.status)


# --- stage outputs ---------------------------------------------------------------------------


def store_transcript(
    conn: Connection,
    artifact_id: str,
    *,
    full_text: str,
    segments: Sequence[dict[str, Any]],
    duration_seconds: float | None,
    word_count: int,
    confidence: float | None,
    model: str,
) -> None:
    conn.execute(
        delete(voice_note_transcripts).where(voice_note_transcripts.c.artifact_id == artifact_id)
    )
    conn.execute(
        voice_note_transcripts.insert().values(
            artifact_id=artifact_id,
            full_text=full_text,
            segments=json.dumps(list(segments)),
            duration_seconds=duration_seconds,
            word_count=word_count,
            confidence=confidence,
            model_used=model,
            created_at=now_ms(),
        )
    )


def get_transcript(engine: Engine, artifact_id: str) -> dict[str, Any] | None:
    with read_connection(engine) as conn:
        row = conn.execute(
            select(voice_note_transcripts).where(
                voice_note_transcripts.c.artifact_id == artifact_id
            )
        ).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["segments"] = json.loads(out["segments"] or "[]")
    return out


def _rows_of(
    engine: Engine, table: Table, artifact_id: str, order: Any, json_list: str | None = None
) -> list[dict[str, Any]]:
    """One artifact's rows of ``table`` in ``order``, with a JSON list column decoded."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(table).where(table.c.artifact_id == artifact_id).order_by(order)
        ).fetchall()
    out = [dict(r._mapping) for r in rows]
    if json_list is not None:
        for item in out:
            item[json_list] = json.loads(item[json_list] or "[]")
    return out


def claims_of(engine: Engine, artifact_id: str) -> list[dict[str, Any]]:
    return _rows_of(
        engine, voice_note_claims, artifact_id, voice_note_claims.c.ordinal, "mentioned_names"
    )


def resolutions_of(engine: Engine, artifact_id: str) -> list[dict[str, Any]]:
    table = voice_note_entity_resolutions
    return _rows_of(engine, table, artifact_id, table.c.resolution_id, "candidates")


def drafts_of(engine: Engine, artifact_id: str) -> list[dict[str, Any]]:
    return _rows_of(engine, insight_drafts, artifact_id, insight_drafts.c.draft_id)


def decide_draft(engine: Engine, draft_id: str, *, confirm: bool, by: str) -> dict[str, Any]:
    """Confirm or reject a pending draft (a coach's decision)."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(insight_drafts)
            .where(insight_drafts.c.draft_id == draft_id, insight_drafts.c.status == "pending")
            .values(
                status="confirmed" if confirm else "rejected", decided_by=by, decided_at=now_ms()
            )
        )
        if result.rowcount != 1:
            raise RecordError(f"no pending draft {draft_id}")
        row = conn.execute(
            select(insight_drafts).where(insight_drafts.c.draft_id == draft_id)
        ).one()
    return dict(row._mapping)
