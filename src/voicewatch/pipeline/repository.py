"""The pipeline's own records: organizations, rosters, aliases, artifacts and their outputs.

Every write that a stage makes is idempotent per artifact and attempt: ids are
derived from the artifact, the attempt and an ordinal, and a stage's outputs
are replaced as a whole inside one transaction. A stage that runs twice
therefore leaves exactly what one run leaves.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from voicewatch.clock import now_ms
from voicewatch.model import ArtifactStatus
from voicewatch.pipeline.resolution import RosterEntry
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import (
    coach_player_aliases,
    insight_drafts,
    organizations,
    players,
    users,
    voice_note_artifacts,
    voice_note_claims,
    voice_note_entity_resolutions,
    voice_note_transcripts,
)

SOURCE_CHANNELS = ("whatsapp", "app")


class RecordError(ValueError):
    """A request about the pipeline's records cannot be met (unknown org, bad roster...)."""


# --- organizations and people ---------------------------------------------------------


def upsert_organization(engine: Engine, organization_id: str, name: str) -> bool:
    """Add an organization, or rename it if it exists; returns True when it was new."""
    organization_id, name = organization_id.strip(), name.strip()
    if not organization_id or not name:
        raise RecordError("an organization needs an id and a name")
    if len(organization_id) > 128 or len(name) > 200:
        raise RecordError("organization id or name is too long")
    with write_transaction(engine) as conn:
        found = conn.execute(
            select(organizations.c.organization_id).where(
                organizations.c.organization_id == organization_id
            )
        ).first()
        if found:
            conn.execute(
                update(organizations)
                .where(organizations.c.organization_id == organization_id)
                .values(name=name)
            )
            return False
        conn.execute(
            organizations.insert().values(
                organization_id=organization_id, name=name, created_at=now_ms()
            )
        )
        return True


def organization_exists(engine: Engine, organization_id: str) -> bool:
    with read_connection(engine) as conn:
        return (
            conn.execute(
                select(organizations.c.organization_id).where(
                    organizations.c.organization_id == organization_id
                )
            ).first()
            is not None
        )


def ensure_coach(engine: Engine, coach_user_id: str, organization_id: str, name: str = "") -> None:
    """Make sure a coach exists (coaches are created on first note).

    An insert that ignores a conflict, not "select, then insert": a coach's
    first notes may arrive together at two servers (PostgreSQL runs both
    transactions at once; the loser of a select-then-insert got a 500).
    """
    with write_transaction(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(users)
            .values(
                user_id=coach_user_id,
                name=name or coach_user_id,
                role="coach",
                organization_id=organization_id,
                created_at=now_ms(),
            )
            .on_conflict_do_nothing(index_elements=["user_id"])
        )


# --- rosters ---------------------------------------------------------------------------


@dataclass
class RosterReport:
    added: int = 0
    updated: int = 0
    aliases: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def player_id_for(organization_id: str, name: str, team: str) -> str:
    """A stable player id, so that re-importing a roster updates instead of duplicating."""
    return (
        "pl_"
        + uuid.uuid5(uuid.NAMESPACE_URL, f"{organization_id}|{name.lower()}|{team.lower()}").hex[
            :16
        ]
    )


def team_id_for(organization_id: str, team: str) -> str:
    return "tm_" + uuid.uuid5(uuid.NAMESPACE_URL, f"{organization_id}|team|{team.lower()}").hex[:16]


def import_roster(engine: Engine, organization_id: str, source: Path | str) -> RosterReport:
    """Load a roster CSV (columns ``name``, ``team``, optional ``aliases`` split by ``|``).

    Bad rows are reported by line number and skipped; good rows land. Importing
    the same file twice changes nothing.
    """
    if not organization_exists(engine, organization_id):
        raise RecordError(f"unknown organization: {organization_id} (create it first)")
    text = source.read_text(encoding="utf-8-sig") if isinstance(source, Path) else source
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "name" not in fields or "team" not in fields:
        raise RecordError("the roster needs the columns name and team (aliases is optional)")
    report = RosterReport()
    rows: list[tuple[str, str, list[str]]] = []
    for raw in reader:
        line = reader.line_num
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        name, team = row.get("name", ""), row.get("team", "")
        if not name:
            report.errors.append((line, "name is empty"))
            continue
        if len(name) > 200 or len(team) > 200:
            report.errors.append((line, "name or team is longer than 200 characters"))
            continue
        aliases = [a.strip() for a in row.get("aliases", "").split("|") if a.strip()]
        if any(len(a) > 200 for a in aliases):
            report.errors.append((line, "an alias is longer than 200 characters"))
            continue
        rows.append((name, team, aliases))
    stamp = now_ms()
    with write_transaction(engine) as conn:
        for name, team, aliases in rows:
            player_id = player_id_for(organization_id, name, team)
            exists = conn.execute(
                select(players.c.player_id).where(players.c.player_id == player_id)
            ).first()
            if exists:
                conn.execute(
                    update(players)
                    .where(players.c.player_id == player_id)
                    .values(name=name, team=team)
                )
                report.updated += 1
            else:
                conn.execute(
                    players.insert().values(
                        player_id=player_id,
                        organization_id=organization_id,
                        name=name,
                        team=team,
                        created_at=stamp,
                    )
                )
                report.added += 1
            for alias in aliases:
                report.aliases += _teach_alias(
                    conn, "*", organization_id, alias, player_id, stamp, 0
                )
    return report


def roster(engine: Engine, organization_id: str) -> list[RosterEntry]:
    """The organization's players and teams, as entities to resolve names against."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(players.c.player_id, players.c.name, players.c.team)
            .where(players.c.organization_id == organization_id)
            .order_by(players.c.name)
        ).fetchall()
    entries = [RosterEntry(r.player_id, r.name, "player", r.team) for r in rows]
    for team in sorted({r.team for r in rows if r.team}):
        entries.append(RosterEntry(team_id_for(organization_id, team), team, "team", team))
    return entries


# --- aliases ----------------------------------------------------------------------------


def _teach_alias(
    conn: Connection,
    coach_user_id: str,
    organization_id: str,
    raw_text: str,
    entity_id: str,
    stamp: int,
    increment: int,
) -> int:
    key = raw_text.strip().lower()
    found = conn.execute(
        select(coach_player_aliases.c.id, coach_player_aliases.c.resolved_entity_id).where(
            coach_player_aliases.c.coach_user_id == coach_user_id,
            coach_player_aliases.c.organization_id == organization_id,
            coach_player_aliases.c.raw_text == key,
        )
    ).first()
    if found:
        conn.execute(
            update(coach_player_aliases)
            .where(coach_player_aliases.c.id == found.id)
            .values(
                resolved_entity_id=entity_id,
                use_count=coach_player_aliases.c.use_count + increment,
                last_used_at=stamp,
            )
        )
        return 0
    conn.execute(
        coach_player_aliases.insert().values(
            coach_user_id=coach_user_id,
            organization_id=organization_id,
            raw_text=key,
            resolved_entity_id=entity_id,
            use_count=max(increment, 1),
            created_at=stamp,
            last_used_at=stamp,
        )
    )
    return 1


def learn_alias(
    engine: Engine, coach_user_id: str, organization_id: str, raw_text: str, entity_id: str
) -> None:
    """Remember that this coach means ``entity_id`` by ``raw_text`` (use_count grows)."""
    with write_transaction(engine) as conn:
        _teach_alias(conn, coach_user_id, organization_id, raw_text, entity_id, now_ms(), 1)


def aliases_for(engine: Engine, coach_user_id: str, organization_id: str) -> dict[str, str]:
    """The coach's learned aliases over the club-wide ones (``*``): lower-cased text → id."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(
                coach_player_aliases.c.coach_user_id,
                coach_player_aliases.c.raw_text,
                coach_player_aliases.c.resolved_entity_id,
            ).where(
                coach_player_aliases.c.organization_id == organization_id,
                coach_player_aliases.c.coach_user_id.in_(["*", coach_user_id]),
            )
        ).fetchall()
    club = {r.raw_text: r.resolved_entity_id for r in rows if r.coach_user_id == "*"}
    mine = {r.raw_text: r.resolved_entity_id for r in rows if r.coach_user_id != "*"}
    return club | mine


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


def replace_claims(
    conn: Connection, artifact_id: str, organization_id: str, claims: Sequence[dict[str, Any]]
) -> list[str]:
    """Replace the artifact's claims (and everything derived from them); returns claim ids."""
    _clear_from_claims(conn, artifact_id)
    stamp = now_ms()
    ids = []
    for ordinal, claim in enumerate(claims):
        claim_id = f"{artifact_id}.c{ordinal}"
        ids.append(claim_id)
        conn.execute(
            voice_note_claims.insert().values(
                claim_id=claim_id,
                artifact_id=artifact_id,
                organization_id=organization_id,
                ordinal=ordinal,
                topic=claim["topic"],
                source_text=claim["source_text"],
                mentioned_names=json.dumps(list(claim["mentioned_names"])),
                extraction_confidence=claim["extraction_confidence"],
                status="extracted",
                created_at=stamp,
            )
        )
    return ids


def _clear_from_claims(conn: Connection, artifact_id: str) -> None:
    for table in (insight_drafts, voice_note_entity_resolutions, voice_note_claims):
        conn.execute(delete(table).where(table.c.artifact_id == artifact_id))


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


def replace_resolutions(
    conn: Connection, artifact_id: str, organization_id: str, resolutions: Sequence[dict[str, Any]]
) -> None:
    """Replace the artifact's resolutions and drafts, and set each claim's status."""
    for table in (insight_drafts, voice_note_entity_resolutions):
        conn.execute(delete(table).where(table.c.artifact_id == artifact_id))
    stamp = now_ms()
    claim_status: dict[str, str] = {}
    for index, res in enumerate(resolutions):
        conn.execute(
            voice_note_entity_resolutions.insert().values(
                resolution_id=f"{res['claim_id']}.r{index}",
                claim_id=res["claim_id"],
                artifact_id=artifact_id,
                organization_id=organization_id,
                raw_text=res["raw_text"],
                candidates=json.dumps(res["candidates"]),
                resolved_entity_id=res.get("resolved_entity_id"),
                resolved_entity_type=res.get("resolved_entity_type"),
                score=res.get("score"),
                status=res["status"],
                resolved_by=res.get("resolved_by"),
                created_at=stamp,
                updated_at=stamp,
            )
        )
        previous = claim_status.get(res["claim_id"], "resolved")
        if res["status"] == "needs_disambiguation" or previous == "needs_disambiguation":
            claim_status[res["claim_id"]] = "needs_disambiguation"
        else:
            claim_status[res["claim_id"]] = "resolved"
    conn.execute(
        update(voice_note_claims)
        .where(voice_note_claims.c.artifact_id == artifact_id)
        .values(status="resolved")
    )
    for claim_id, status in claim_status.items():
        conn.execute(
            update(voice_note_claims)
            .where(voice_note_claims.c.claim_id == claim_id)
            .values(status=status)
        )


def resolutions_of(engine: Engine, artifact_id: str) -> list[dict[str, Any]]:
    table = voice_note_entity_resolutions
    return _rows_of(engine, table, artifact_id, table.c.resolution_id, "candidates")


def replace_drafts(
    conn: Connection, artifact_id: str, organization_id: str, drafts: Sequence[dict[str, Any]]
) -> None:
    conn.execute(delete(insight_drafts).where(insight_drafts.c.artifact_id == artifact_id))
    stamp = now_ms()
    for draft in drafts:
        conn.execute(
            insight_drafts.insert().values(
                draft_id=f"{draft['claim_id']}.d",
                artifact_id=artifact_id,
                claim_id=draft["claim_id"],
                organization_id=organization_id,
                player_id=draft.get("player_id"),
                title=draft["title"][:300],
                body=draft["body"],
                ai_confidence=draft["ai_confidence"],
                status="pending",
                created_at=stamp,
            )
        )


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


# --- retries ---------------------------------------------------------------------------------


def finish_retry(
    engine: Engine, artifact_id: str, attempt: int, *, ok: bool, error: str | None = None
) -> None:
    """Record how retry ``attempt`` of an artifact ended (no-op when no retry row exists)."""
    from voicewatch.store.tables import retry_attempts

    with write_transaction(engine) as conn:
        conn.execute(
            update(retry_attempts)
            .where(
                retry_attempts.c.artifact_id == artifact_id,
                retry_attempts.c.attempt == attempt,
                retry_attempts.c.status == "running",
            )
            .values(
                status="succeeded" if ok else "failed",
                error_message=(error or None) and error[:4000],
                finished_at=now_ms(),
            )
        )
