"""A retry replaces a stage's outputs but keeps what a person decided (both databases).

The story: a note's draft stage fails once (an injected transient fault) after its
names were resolved, one of them ambiguous. While the note waits for a retry, its
coach resolves the name (the claim's draft is generated then), confirms that
draft and rejects another made the same way. Staff then retry: the person's
choices, the decided drafts and the insight are still there, nothing is asked or
made twice, and the learned alias is not counted again.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from pipeline_helpers import make_pipeline
from test_decisions import EXTRA_ROSTER, SEAN_KELLY
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.decisions import Actor, confirm_draft, reject_draft
from voicewatch.pipeline.disambiguation import resolve_waiting_name
from voicewatch.retry import start_retry
from voicewatch.store import read_connection
from voicewatch.store.tables import (
    coach_decisions,
    coach_player_aliases,
    insight_drafts,
    voice_note_entity_resolutions,
    voice_note_insights,
)

COACH = Actor.coach("coach_1")
#: Two claims, each with the ambiguous "Sean" (Kelly or Murphy), and one plain claim.
NOTE = (
    "Sean was brilliant on the frees tonight. Sean looked tired at the end. "
    "Aoife Kelly was sharp in training."
)


@pytest.fixture
def pipeline(db_url: str) -> Any:
    ctx, driver = make_pipeline(db_url)
    clubs.import_roster(ctx.engine, "org_clg", EXTRA_ROSTER)
    yield ctx, driver
    ctx.monitor.close()


def _count(engine: Any, table: Any) -> int:
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _sean_uses(engine: Any) -> int:
    with read_connection(engine) as conn:
        return int(
            conn.execute(
                select(coach_player_aliases.c.use_count).where(
                    coach_player_aliases.c.coach_user_id == "coach_1",
                    coach_player_aliases.c.raw_text == "sean",
                )
            ).scalar_one()
        )


def _decided_note(pipeline: Any) -> dict[str, Any]:
    """The story up to the retry: returns the artifact id and the decided items."""
    ctx, driver = pipeline
    artifact = repo.create_artifact(
        ctx.engine,
        organization_id="org_clg",
        coach_user_id="coach_1",
        source_channel="app",
        text=NOTE,
        fail_plan="draft_generation",
    )
    artifact_id = artifact["artifact_id"]
    driver.enqueue("transcription", artifact_id, 0)
    driver.drain()
    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "failed"
    assert repo.drafts_of(ctx.engine, artifact_id) == []
    waiting = [r for r in repo.resolutions_of(ctx.engine, artifact_id) if r["raw_text"] == "Sean"]
    assert [r["status"] for r in waiting] == ["needs_disambiguation"] * 2
    first = resolve_waiting_name(ctx, waiting[0]["resolution_id"], COACH, entity_id=SEAN_KELLY)
    second = resolve_waiting_name(ctx, waiting[1]["resolution_id"], COACH, entity_id=None)
    insight = confirm_draft(ctx, first["draft"]["draft_id"], COACH, text="Frees: top class")
    reject_draft(ctx, second["draft"]["draft_id"], COACH, reason="Not a player")
    return {
        "artifact_id": artifact_id,
        "resolutions": {r["resolution_id"]: r["status"] for r in waiting}
        | {first["resolution"]["resolution_id"]: "user_resolved"}
        | {second["resolution"]["resolution_id"]: "unresolved"},
        "confirmed": first["draft"]["draft_id"],
        "rejected": second["draft"]["draft_id"],
        "insight": insight["insight_id"],
    }


@pytest.mark.parametrize("stage", ["entity_resolution", "claims_extraction", "full"])
def test_a_retry_keeps_what_a_person_decided(pipeline: Any, stage: str) -> None:
    ctx, driver = pipeline
    story = _decided_note(pipeline)
    artifact_id = story["artifact_id"]
    decisions_before = _count(ctx.engine, coach_decisions)
    assert (decisions_before, _sean_uses(ctx.engine)) == (4, 1)  # 2 names, 2 drafts

    start_retry(ctx.engine, artifact_id, stage, requested_by="ops", enqueue=driver.enqueue)
    driver.drain()

    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "completed"
    resolutions = repo.resolutions_of(ctx.engine, artifact_id)
    by_id = {r["resolution_id"]: r for r in resolutions}
    for resolution_id, status in story["resolutions"].items():
        assert by_id[resolution_id]["status"] == status
        assert by_id[resolution_id]["resolved_by"] == "coach_1"
    assert by_id[next(iter(story["resolutions"]))]["resolved_entity_id"] == SEAN_KELLY
    assert len(resolutions) == 3  # Sean twice and Aoife Kelly: none asked or stored twice
    assert not [r for r in resolutions if r["status"] == "needs_disambiguation"]
    drafts = {d["draft_id"]: d for d in repo.drafts_of(ctx.engine, artifact_id)}
    assert len(drafts) == 3  # one per claim
    assert drafts[story["confirmed"]]["status"] == "applied"
    assert drafts[story["rejected"]]["status"] == "rejected"
    made_now = [d for d in drafts.values() if d["draft_id"] not in story.values()]
    assert [d["status"] for d in made_now] == ["pending"]  # only the plain claim's is new
    with read_connection(ctx.engine) as conn:
        insights = conn.execute(select(voice_note_insights)).all()
        statuses = [r.status for r in conn.execute(select(insight_drafts.c.status))]
        names = conn.execute(select(voice_note_entity_resolutions.c.raw_text)).all()
    assert [(i.insight_id, i.body) for i in insights] == [(story["insight"], "Frees: top class")]
    assert sorted(statuses) == ["applied", "pending", "rejected"]
    assert len(names) == 3
    assert _count(ctx.engine, coach_decisions) == decisions_before  # nothing decided again
    assert _sean_uses(ctx.engine) == 1  # the kept choice is not an alias use


def test_a_claims_retry_drops_what_belonged_to_a_changed_claim(pipeline: Any) -> None:
    """A claim whose text changed on the re-run is a new claim: nothing of the old one stays
    in the pipeline's tables (its applied insight stays on the player's record)."""
    from sqlalchemy import update

    from voicewatch.store import write_transaction
    from voicewatch.store.tables import voice_note_claims

    ctx, driver = pipeline
    story = _decided_note(pipeline)
    artifact_id = story["artifact_id"]
    claim_id = story["confirmed"].removesuffix(".d")
    with write_transaction(ctx.engine) as conn:  # as if the first extraction read it otherwise
        conn.execute(
            update(voice_note_claims)
            .where(voice_note_claims.c.claim_id == claim_id)
            .values(source_text="Sean was fine")
        )
    start_retry(ctx.engine, artifact_id, "claims_extraction", requested_by="ops",
                enqueue=driver.enqueue)  # fmt: skip
    driver.drain()
    drafts = {d["draft_id"]: d for d in repo.drafts_of(ctx.engine, artifact_id)}
    assert drafts[story["rejected"]]["status"] == "rejected"  # its claim is unchanged
    # The changed claim is resolved afresh (by the alias the coach taught: a real use)
    # and gets a new draft to decide; the applied insight stays on the player's record.
    again = [r for r in repo.resolutions_of(ctx.engine, artifact_id) if r["claim_id"] == claim_id]
    assert [(r["status"], r["resolved_by"]) for r in again] == [("auto_resolved", "alias")]
    assert drafts[story["confirmed"]]["status"] == "pending"
    assert _sean_uses(ctx.engine) == 2
    assert _count(ctx.engine, voice_note_insights) == 1
