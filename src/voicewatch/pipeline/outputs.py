"""A stage's outputs, replaced as a whole on a re-run, except what a person decided.

A stage that runs again for an artifact (a staff retry of claims extraction,
entity resolution or the full pipeline) replaces what its earlier run wrote,
inside the transaction that marks it done, so two runs leave what one leaves.
What a person decided in between is not the stage's to replace:

- a name a person resolved (``user_resolved``, or ``unresolved`` with a person in
  ``resolved_by``: "not a player") stays as they left it, and the re-run's own
  result for that name (same claim, same raw text) is dropped;
- a draft that is no longer pending (confirmed and applied, rejected, expired, or
  auto-applied) stays with its insight, and no new draft is made for its claim;
- a claims re-run keeps them only for a claim whose id and text are unchanged
  (an insight already applied stays on the player's record either way).

So a retry duplicates nothing: no second draft or insight for a decided claim, no
name asked again, and an alias use counted once (``AliasHits.new``: only the names
a learned alias had not already resolved for this artifact).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, delete, not_, select, update

from voicewatch.clock import now_ms
from voicewatch.model import RESOLVED_BY_ALIAS, ClaimStatus, DraftStatus, ResolutionStatus
from voicewatch.store.tables import (
    insight_drafts,
    voice_note_claims,
    voice_note_entity_resolutions,
)

res_t = voice_note_entity_resolutions
NEEDS = ResolutionStatus.NEEDS_DISAMBIGUATION.value


def decided_by_person(row: Any) -> bool:
    """Whether a resolution is a person's choice (a re-run keeps it)."""
    if row.status == ResolutionStatus.USER_RESOLVED.value:
        return True
    return row.status == ResolutionStatus.UNRESOLVED.value and row.resolved_by not in (
        None,
        RESOLVED_BY_ALIAS,
    )


def _kept_draft() -> Any:
    return insight_drafts.c.status != DraftStatus.PENDING.value


def replace_claims(
    conn: Connection, artifact_id: str, organization_id: str, claims: Sequence[dict[str, Any]]
) -> list[str]:
    """Replace the artifact's claims (and what was derived from them); returns claim ids.

    A person's resolutions and the decided drafts of a claim whose id and text are
    unchanged are kept (see the module docstring); everything else derived goes.
    """
    before = {
        r.claim_id: r.source_text
        for r in conn.execute(
            select(voice_note_claims.c.claim_id, voice_note_claims.c.source_text).where(
                voice_note_claims.c.artifact_id == artifact_id
            )
        )
    }
    conn.execute(delete(voice_note_claims).where(voice_note_claims.c.artifact_id == artifact_id))
    stamp = now_ms()
    ids, unchanged = [], []
    for ordinal, claim in enumerate(claims):
        claim_id = f"{artifact_id}.c{ordinal}"
        ids.append(claim_id)
        if before.get(claim_id) == claim["source_text"]:
            unchanged.append(claim_id)
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
                status=ClaimStatus.EXTRACTED.value,
                created_at=stamp,
            )
        )
    keep_drafts = and_(_kept_draft(), insight_drafts.c.claim_id.in_(unchanged))
    conn.execute(
        delete(insight_drafts).where(insight_drafts.c.artifact_id == artifact_id, not_(keep_drafts))
    )
    for row in conn.execute(select(res_t).where(res_t.c.artifact_id == artifact_id)).all():
        if row.claim_id not in unchanged or not decided_by_person(row):
            conn.execute(delete(res_t).where(res_t.c.resolution_id == row.resolution_id))
    return ids


@dataclass
class AliasHits:
    """The names a learned alias resolved in this run; ``new``: not already counted."""

    new: list[str] = field(default_factory=list)


def replace_resolutions(
    conn: Connection, artifact_id: str, organization_id: str, resolutions: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], AliasHits]:
    """Replace the artifact's resolutions, keeping a person's; set each claim's status.

    Returns the resolutions now stored (the kept ones and this run's) and the alias
    hits to count. Pending drafts go (the draft stage makes them again); decided
    ones stay.
    """
    previous = conn.execute(select(res_t).where(res_t.c.artifact_id == artifact_id)).all()
    kept = {(r.claim_id, r.raw_text): r for r in previous if decided_by_person(r)}
    aliased = {(r.claim_id, r.raw_text) for r in previous if r.resolved_by == RESOLVED_BY_ALIAS}
    taken = {r.resolution_id for r in kept.values()}
    conn.execute(
        delete(res_t).where(
            res_t.c.artifact_id == artifact_id, res_t.c.resolution_id.not_in(sorted(taken))
        )
    )
    conn.execute(
        delete(insight_drafts).where(
            insight_drafts.c.artifact_id == artifact_id,
            insight_drafts.c.status == DraftStatus.PENDING.value,
        )
    )
    stamp = now_ms()
    stored: list[dict[str, Any]] = [dict(r._mapping) for r in kept.values()]
    hits = AliasHits()
    for index, res in enumerate(resolutions):
        key = (res["claim_id"], res["raw_text"])
        if key in kept:
            continue  # a person decided this name: their choice stands
        resolution_id = f"{res['claim_id']}.r{index}"
        while resolution_id in taken:
            resolution_id += "x"  # a kept row has the id (claims reordered): never collide
        taken.add(resolution_id)
        row = {
            "resolution_id": resolution_id,
            "claim_id": res["claim_id"],
            "artifact_id": artifact_id,
            "organization_id": organization_id,
            "raw_text": res["raw_text"],
            "candidates": json.dumps(res["candidates"]),
            "resolved_entity_id": res.get("resolved_entity_id"),
            "resolved_entity_type": res.get("resolved_entity_type"),
            "score": res.get("score"),
            "status": res["status"],
            "resolved_by": res.get("resolved_by"),
            "created_at": stamp,
            "updated_at": stamp,
        }
        conn.execute(res_t.insert().values(**row))
        stored.append(row)
        if row["resolved_by"] == RESOLVED_BY_ALIAS and key not in aliased:
            hits.new.append(row["raw_text"])
    _set_claim_statuses(conn, artifact_id, stored)
    return stored, hits


def _set_claim_statuses(conn: Connection, artifact_id: str, stored: list[dict[str, Any]]) -> None:
    """A claim waits (``needs_disambiguation``) while any of its names does; else resolved."""
    waiting = sorted({r["claim_id"] for r in stored if r["status"] == NEEDS})
    conn.execute(
        update(voice_note_claims)
        .where(voice_note_claims.c.artifact_id == artifact_id)
        .values(status=ClaimStatus.RESOLVED.value)
    )
    if waiting:
        conn.execute(
            update(voice_note_claims)
            .where(voice_note_claims.c.claim_id.in_(waiting))
            .values(status=ClaimStatus.NEEDS_DISAMBIGUATION.value)
        )


def replace_drafts(
    conn: Connection, artifact_id: str, organization_id: str, drafts: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Replace the artifact's pending drafts; a claim with a decided draft gets none new.

    Returns the drafts written (the run's ``draft_count``).
    """
    conn.execute(
        delete(insight_drafts).where(
            insight_drafts.c.artifact_id == artifact_id,
            insight_drafts.c.status == DraftStatus.PENDING.value,
        )
    )
    decided = {
        r.claim_id
        for r in conn.execute(
            select(insight_drafts.c.claim_id).where(insight_drafts.c.artifact_id == artifact_id)
        )
    }
    stamp = now_ms()
    written = []
    for draft in drafts:
        if draft["claim_id"] in decided:
            continue
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
                status=DraftStatus.PENDING.value,
                created_at=stamp,
            )
        )
        written.append(draft)
    return written
