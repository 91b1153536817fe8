"""The pipeline side of decisions: confirm, reject, resolve a name, aliases learned.

On both databases, through the real pipeline (stages, store, emitter): a note is
submitted, its stages run, and a coach (or staff on the coach's behalf) decides.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from hostile_strings import HOSTILE
from pipeline_helpers import make_pipeline
from voicewatch import event_queries
from voicewatch.clock import now_ms
from voicewatch.coaching.inbox import pending_drafts, waiting_names
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.decisions import (
    Actor,
    Conflict,
    DecisionError,
    NotFound,
    confirm_draft,
    reject_draft,
)
from voicewatch.pipeline.disambiguation import resolve_waiting_name
from voicewatch.pipeline.intake import submit_note
from voicewatch.store import read_connection
from voicewatch.store.tables import (
    coach_decisions,
    coach_player_aliases,
    insight_drafts,
    voice_note_insights,
)

EXTRA_ROSTER = "name,team,aliases\nSean Kelly,U14 Camogie,\nPadraig Nolan,Senior Football,Podge\n"
SEAN_KELLY = clubs.player_id_for("org_clg", "Sean Kelly", "U14 Camogie")
SEAN_MURPHY = clubs.player_id_for("org_clg", "Sean Murphy", "U14 Hurling")
PADRAIG = clubs.player_id_for("org_clg", "Padraig Nolan", "Senior Football")
COACH = Actor.coach("coach_1")
OTHER = Actor.coach("coach_2")
STAFF = Actor.staff("ops@club.example")


@pytest.fixture
def pipeline(db_url: str) -> Any:
    ctx, driver = make_pipeline(db_url)
    clubs.import_roster(ctx.engine, "org_clg", EXTRA_ROSTER)
    yield ctx, driver
    ctx.monitor.close()


def _note(pipeline: Any, text: str, coach: str = "coach_1") -> str:
    ctx, driver = pipeline
    artifact = submit_note(ctx, organization_id="org_clg", coach_user_id=coach, text=text)
    driver.drain()
    return str(artifact["artifact_id"])


def _alias(ctx: Any, coach: str, raw: str) -> Any:
    with read_connection(ctx.engine) as conn:
        return conn.execute(
            select(coach_player_aliases).where(
                coach_player_aliases.c.coach_user_id == coach,
                coach_player_aliases.c.raw_text == raw,
            )
        ).first()


def _decisions(ctx: Any) -> list[dict[str, Any]]:
    with read_connection(ctx.engine) as conn:
        rows = conn.execute(select(coach_decisions).order_by(coach_decisions.c.id))
        return [dict(r._mapping) for r in rows]


def test_the_story_resolve_confirm_and_the_alias_learned(pipeline: Any) -> None:
    ctx, _driver = pipeline
    first = _note(pipeline, "Sean was brilliant on the frees tonight.")
    waiting = waiting_names(ctx.engine, "coach_1")
    assert [w["raw_text"] for w in waiting] == ["Sean"]
    assert {c["entity_id"] for c in waiting[0]["candidates"]} >= {SEAN_KELLY, SEAN_MURPHY}
    assert waiting[0]["source_text"] == "Sean was brilliant on the frees tonight"
    assert not waiting[0]["not_on_roster"]
    assert waiting_names(ctx.engine, "coach_2") == []
    assert repo.drafts_of(ctx.engine, first) == []  # the claim waits for the name

    later = now_ms() + 60_000
    outcome = resolve_waiting_name(
        ctx, waiting[0]["resolution_id"], COACH, entity_id=SEAN_KELLY, now=later
    )
    draft = outcome["draft"]
    assert draft["player_id"] == SEAN_KELLY and "Sean Kelly" in draft["title"]
    assert [d["draft_id"] for d in pending_drafts(ctx.engine, "coach_1")] == [draft["draft_id"]]
    assert waiting_names(ctx.engine, "coach_1") == []
    assert _alias(ctx, "coach_1", "sean").use_count == 1

    insight = confirm_draft(ctx, draft["draft_id"], COACH, now=later + 90_000)
    assert insight["player_id"] == SEAN_KELLY and insight["body"] == draft["body"]
    assert repo.drafts_of(ctx.engine, first)[0]["status"] == "applied"
    ctx.monitor.flush(timeout=10)
    timeline = event_queries.artifact_timeline(ctx.engine, first)
    types = [e["event_type"] for e in timeline]
    needs = types.index("entity_needs_disambiguation")
    late = [i for i, e in enumerate(timeline) if ".claim." in e["event_id"]]
    confirmed = types.index("draft_confirmed")
    assert needs < late[0] < late[1] < confirmed
    assert [types[i] for i in late] == ["draft_generation_started", "drafts_generated"]
    event = timeline[confirmed]
    assert event["pipeline_stage"] == "confirmation"
    assert event["duration_ms"] == 90_000
    assert (event["previous_status"], event["new_status"]) == ("pending", "applied")  # a person
    assert event["metadata"]["confidence_score"] == pytest.approx(draft["ai_confidence"])

    second = _note(pipeline, "Sean was sharp at training again.")
    resolution = repo.resolutions_of(ctx.engine, second)[0]
    assert (resolution["status"], resolution["resolved_entity_id"]) == ("auto_resolved", SEAN_KELLY)
    assert resolution["resolved_by"] == "alias"
    assert _alias(ctx, "coach_1", "sean").use_count == 2
    other = _note(pipeline, "Sean was sharp at training again.", coach="coach_2")
    assert repo.resolutions_of(ctx.engine, other)[0]["status"] == "needs_disambiguation"


def test_deciding_twice_or_an_expired_draft_is_a_conflict(pipeline: Any) -> None:
    ctx, _driver = pipeline
    artifact = _note(pipeline, "Aoife Kelly was brilliant on the frees. Jack Walsh was tired.")
    first, second = (d["draft_id"] for d in repo.drafts_of(ctx.engine, artifact))
    confirm_draft(ctx, first, COACH)
    with pytest.raises(Conflict, match=r"already decided \(applied by coach_1\)"):
        confirm_draft(ctx, first, COACH)
    with pytest.raises(Conflict, match="already decided"):
        reject_draft(ctx, first, STAFF)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(insight_drafts)
            .where(insight_drafts.c.draft_id == second)
            .values(status="expired")
        )
    with pytest.raises(Conflict, match="expired: it can no longer be decided"):
        confirm_draft(ctx, second, COACH)
    assert Conflict.status_code == 409 and NotFound.status_code == 404
    assert [d["action"] for d in _decisions(ctx)] == ["confirmed"]


def test_another_coach_gets_not_found_and_staff_act_on_behalf(pipeline: Any) -> None:
    ctx, _driver = pipeline
    artifact = _note(pipeline, "Aoife Kelly was brilliant on the frees.")
    draft_id = repo.drafts_of(ctx.engine, artifact)[0]["draft_id"]
    with pytest.raises(NotFound, match=f"no draft {draft_id}"):
        confirm_draft(ctx, draft_id, OTHER)
    with pytest.raises(NotFound, match="no draft nope"):
        confirm_draft(ctx, "nope", COACH)  # the same answer as another coach's draft
    assert pending_drafts(ctx.engine, "coach_2") == []
    at = now_ms()
    result = reject_draft(ctx, draft_id, STAFF, reason="not about the match", now=at)
    assert result["on_behalf"] is True
    (row,) = _decisions(ctx)
    assert (row["decided_by"], row["coach_user_id"], row["on_behalf"], row["at_ms"]) == (
        "ops@club.example",  # who
        "coach_1",  # for whom
        True,
        at,  # when
    )
    assert (row["action"], row["text"], row["subject"]) == (
        "rejected",
        "not about the match",
        "draft",
    )
    ctx.monitor.flush(timeout=10)
    types = [e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact)]
    assert types[-1] == "draft_rejected"


@pytest.mark.parametrize("hostile", [*HOSTILE[6:10], "  ", "Ø\u202eevil"])
def test_hostile_edits_and_reasons_are_stored_exactly(pipeline: Any, hostile: str) -> None:
    ctx, _driver = pipeline
    artifact = _note(pipeline, "Aoife Kelly was brilliant on the frees. Jack Walsh was tired.")
    first, second = (d["draft_id"] for d in repo.drafts_of(ctx.engine, artifact))
    if not hostile.strip():
        with pytest.raises(DecisionError, match="the edited text is empty"):
            confirm_draft(ctx, first, COACH, text=hostile)
        return
    insight = confirm_draft(ctx, first, COACH, text=hostile)
    reject_draft(ctx, second, COACH, reason=hostile)
    with read_connection(ctx.engine) as conn:
        stored = conn.execute(select(voice_note_insights.c.body)).scalar_one()
    assert stored == hostile == insight["body"]
    assert [d["text"] for d in _decisions(ctx)] == [hostile, hostile]


def test_bad_edits_are_refused_and_change_nothing(pipeline: Any) -> None:
    ctx, _driver = pipeline
    artifact = _note(pipeline, "Aoife Kelly was brilliant on the frees.")
    draft_id = repo.drafts_of(ctx.engine, artifact)[0]["draft_id"]
    with pytest.raises(DecisionError, match="longer than 10000 characters"):
        confirm_draft(ctx, draft_id, COACH, text="x" * 10_001)
    with pytest.raises(DecisionError, match="the reason is longer than 2000"):
        reject_draft(ctx, draft_id, COACH, reason="x" * 2001)
    assert repo.drafts_of(ctx.engine, artifact)[0]["status"] == "pending"
    assert _decisions(ctx) == []


def test_not_a_player_and_a_player_not_among_the_candidates(pipeline: Any) -> None:
    ctx, _driver = pipeline
    _note(pipeline, "Sean was brilliant on the frees tonight.")
    (waiting,) = waiting_names(ctx.engine, "coach_1")
    with pytest.raises(DecisionError, match="pl_nope is not on the roster of org_clg"):
        resolve_waiting_name(ctx, waiting["resolution_id"], COACH, entity_id="pl_nope")
    with pytest.raises(NotFound):
        resolve_waiting_name(ctx, waiting["resolution_id"], OTHER, entity_id=None)
    outcome = resolve_waiting_name(ctx, waiting["resolution_id"], STAFF, entity_id=None)
    assert outcome["resolution"]["status"] == "unresolved"
    assert outcome["draft"]["player_id"] is None  # the claim moved on, about nobody
    with pytest.raises(Conflict, match=r"already resolved \(unresolved by ops@club.example\)"):
        resolve_waiting_name(ctx, waiting["resolution_id"], COACH, entity_id=SEAN_KELLY)
    assert _alias(ctx, "coach_1", "sean") is None  # "not a player" teaches nothing
    (row,) = _decisions(ctx)
    assert (row["subject"], row["action"], row["on_behalf"]) == ("name", "unresolved", True)

    _note(pipeline, "Sean was sharp at training.")
    (again,) = waiting_names(ctx.engine, "coach_1")
    padraig = resolve_waiting_name(ctx, again["resolution_id"], COACH, entity_id=PADRAIG)
    assert padraig["draft"]["player_id"] == PADRAIG  # any roster player, not only candidates
    assert "Padraig Nolan" in padraig["draft"]["title"]


def test_a_name_on_nobody_is_shown_to_the_coach(pipeline: Any) -> None:
    ctx, _driver = pipeline
    artifact = _note(pipeline, "Zebedee Quartermaine hurt his knee at training.")
    (waiting,) = waiting_names(ctx.engine, "coach_1")
    assert waiting["raw_text"] == "Zebedee Quartermaine" and waiting["not_on_roster"]
    (draft,) = repo.drafts_of(ctx.engine, artifact)
    assert draft["player_id"] is None
    outcome = resolve_waiting_name(ctx, waiting["resolution_id"], COACH, entity_id=SEAN_MURPHY)
    assert outcome["draft"]["draft_id"] == draft["draft_id"]
    assert repo.drafts_of(ctx.engine, artifact)[0]["player_id"] == SEAN_MURPHY
    assert waiting_names(ctx.engine, None) == []


def test_roster_aliases_reach_the_claims_extractor(pipeline: Any) -> None:
    ctx, _driver = pipeline
    artifact = _note(pipeline, "Podge injured his ankle.")
    claims = repo.claims_of(ctx.engine, artifact)
    assert [c["mentioned_names"] for c in claims] == [["Podge"]]
    (resolution,) = repo.resolutions_of(ctx.engine, artifact)
    assert (resolution["status"], resolution["resolved_entity_id"]) == ("auto_resolved", PADRAIG)
    assert repo.drafts_of(ctx.engine, artifact)[0]["player_id"] == PADRAIG


def test_the_backlog_alert_raises_then_clears_as_a_person_drains_it(pipeline: Any) -> None:
    from voicewatch.alerts import check_health
    from voicewatch.config import AlertThresholds
    from voicewatch.metrics import disambiguation_backlog

    ctx, _driver = pipeline
    limits = AlertThresholds(disambiguation_backlog=2)
    _note(pipeline, "Sean was brilliant on the frees tonight.")
    _note(pipeline, "Sean was tired at training.", coach="coach_2")
    _note(pipeline, "Zebedee Quartermaine hurt his knee at training.")
    assert disambiguation_backlog(ctx.engine) == 3  # two ambiguous, one on nobody

    def kinds(report: Any, which: str) -> list[str]:
        return [a["alert_kind"] for a in getattr(report, which)]

    at = now_ms()
    assert kinds(check_health(ctx.engine, at, limits, notifier=None), "raised") == [
        "disambiguation_backlog"
    ]
    queue = waiting_names(ctx.engine, None)  # the staff's queue: every coach's, oldest first
    assert [w["raw_text"] for w in queue] == ["Sean", "Sean", "Zebedee Quartermaine"]
    resolve_waiting_name(ctx, queue[0]["resolution_id"], STAFF, entity_id=SEAN_KELLY)
    assert disambiguation_backlog(ctx.engine) == 2
    assert kinds(check_health(ctx.engine, at + 1, limits), "resolved") == ["disambiguation_backlog"]


def test_the_flow_graph_gains_the_confirmation_stage(pipeline: Any) -> None:
    from voicewatch.dashboard.overview import flow_graph

    ctx, _driver = pipeline
    artifact = _note(pipeline, "Aoife Kelly was brilliant on the frees. Jack Walsh was tired.")
    first, _second = repo.drafts_of(ctx.engine, artifact)
    at = int(first["created_at"]) + 90_000
    confirm_draft(ctx, first["draft_id"], COACH, now=at)
    node = flow_graph(ctx.engine, at + 1)[-1]
    assert (node["stage"], node["href"]) == ("confirmation", "/disambiguation")
    assert node["queue_depth"] == 1  # the other draft still pending
    assert node["avg_latency_ms"] == 90_000  # the median wait of the one decision
    assert node["throughput_per_hour"] == pytest.approx(1 / 24)
