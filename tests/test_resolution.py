"""Entity resolution: every path from a coach's mention to a roster entry, or to a person."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicewatch.model import ResolutionStatus
from voicewatch.pipeline.resolution import (
    AUTO_THRESHOLD,
    CANDIDATE_FLOOR,
    RosterEntry,
    RosterIndex,
    normalise_name,
    resolve_name,
)

AUTO = ResolutionStatus.AUTO_RESOLVED
ASK = ResolutionStatus.NEEDS_DISAMBIGUATION
NONE = ResolutionStatus.UNRESOLVED

ROSTER = [
    RosterEntry("p-sob", "Seán Ó Briain", "player", "U14 Boys"),
    RosterEntry("p-sk", "Seán Kelly", "player", "U14 Boys"),
    RosterEntry("p-ros", "Rory O'Sullivan", "player", "U16 Boys"),
    RosterEntry("p-jk", "James Kinsella", "player", "U16 Boys"),
    RosterEntry("p-pn", "Patrick Nolan", "player", "U16 Boys"),
    RosterEntry("p-pd", "Pádraig Daly", "player", "U14 Boys"),
    RosterEntry("p-cd", "Ciara Dunne", "player", "U16 Girls"),
    RosterEntry("p-zl", "Zoë Łukasz", "player", "U16 Girls"),
    RosterEntry("p-jjt", "John Joe Treacy", "player", "Seniors"),
    RosterEntry("t-u14", "U14 Boys", "team", "U14 Boys"),
]
ALIASES = {"podge": "p-pd", "paddy": "p-pn", "the bull": "p-jjt", "gone": "p-left-the-club"}


def resolve(raw: str, aliases: dict[str, str] | None = None, **kwargs: float):
    return resolve_name(raw, ROSTER, ALIASES if aliases is None else aliases, **kwargs)


# --- auto_resolved ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "entity_id"),
    [
        ("Seán Kelly", "p-sk"),
        ("sean kelly", "p-sk"),  # accents and case
        ("SEAN KELLY", "p-sk"),
        ("Seán Kelly's", "p-sk"),  # possessive
        ("Kelly", "p-sk"),  # a surname that one player has
        ("rory osullivan", "p-ros"),  # a transcript drops the apostrophe
        ("Rory O Sullivan", "p-ros"),
        ("J. Kinsella", "p-jk"),  # an initial and a surname
        ("paddy nolan", "p-pn"),  # a taught nickname and the surname
        ("Zoe Lukasz", "p-zl"),  # ë and ł fold too
        ("Ciara", "p-cd"),  # a first name that one player has
        ("John Treacy", "p-jjt"),  # part of a longer name
        ("U14 Boys", "t-u14"),  # teams resolve like players
        ("the U14s", "t-u14"),
    ],
)
def test_auto_resolved(raw: str, entity_id: str) -> None:
    result = resolve(raw)
    assert result.status is AUTO, result
    assert result.entity_id == entity_id
    assert result.best is not None and result.best.score >= AUTO_THRESHOLD


def test_learned_alias_wins_first() -> None:
    result = resolve("Podge")
    assert (result.status, result.entity_id) == (AUTO, "p-pd")
    assert result.best is not None and result.best.matched_on == "alias"
    assert resolve("podge's").entity_id == "p-pd"
    assert resolve("the bull").entity_id == "p-jjt"
    # an alias beats a better-looking name match: this coach means Ó Briain by "Kelly"
    result = resolve("kelly", {"kelly": "p-sob"})
    assert (result.status, result.entity_id) == (AUTO, "p-sob")


def test_alias_keys_are_matched_the_way_the_repository_stores_them() -> None:
    assert resolve("  PODGE ").entity_id == "p-pd"
    assert resolve("Pódge").entity_id == "p-pd"  # accents folded on both sides


def test_alias_to_an_entity_not_on_the_roster_is_ignored() -> None:
    assert resolve("gone").status is NONE


def test_resolution_reports_its_team_and_type() -> None:
    best = resolve("U14 Boys").best
    assert best is not None and (best.entity_type, best.team) == ("team", "U14 Boys")


# --- needs_disambiguation ----------------------------------------------------------------


def test_two_players_with_the_same_first_name_need_a_person() -> None:
    for raw in ("Seán", "sean", "Sean's", "seans"):
        result = resolve(raw)
        assert result.status is ASK, raw
        assert result.entity_id is None
        assert {c.entity_id for c in result.candidates[:2]} == {"p-sob", "p-sk"}
        assert result.candidates[0].score == result.candidates[1].score


def test_two_players_with_the_same_full_name_need_a_person() -> None:
    roster = [*ROSTER, RosterEntry("p-sk2", "Seán Kelly", "player", "Minors")]
    result = resolve_name("Seán Kelly", roster, {})
    assert result.status is ASK
    assert {c.entity_id for c in result.candidates[:2]} == {"p-sk", "p-sk2"}


def test_a_near_miss_is_offered_not_chosen() -> None:
    for raw in ("podgey", "Kinsela"):
        result = resolve(raw)
        assert result.status is ASK, raw
        assert result.best is not None and result.best.score < AUTO_THRESHOLD


def test_candidates_are_ranked_limited_and_above_the_floor() -> None:
    roster = [RosterEntry(f"p{i}", f"Sean {s}", "player") for i, s in enumerate("ABCDEFGH")]
    result = resolve_name("Sean", roster, {}, limit=3)
    assert result.status is ASK
    assert len(result.candidates) == 3
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert all(s >= CANDIDATE_FLOOR for s in scores)


def test_a_margin_keeps_close_calls_for_a_person() -> None:
    roster = [RosterEntry("a", "Ciara Dunne"), RosterEntry("b", "Ciarán Lynch")]
    assert resolve_name("Ciara", roster, {}).status is AUTO  # 90 against 82
    assert resolve_name("Ciara", roster, {}, margin=10).status is ASK


# --- unresolved -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["Xavier", "Oranmore", "", "   ", "'s", "!!!"])
def test_unresolved(raw: str) -> None:
    result = resolve(raw)
    assert result.status is NONE
    assert result.candidates == ()
    assert result.best is None and result.entity_id is None


def test_thresholds_are_settings() -> None:
    assert resolve("Kinsela", candidate_floor=90).status is NONE
    assert resolve("Kinsela", auto_threshold=80).status is AUTO


def test_empty_roster() -> None:
    assert resolve_name("Seán", [], {}).status is NONE
    assert resolve_name("Seán", [], {"sean": "nobody"}).status is NONE


# --- helpers -----------------------------------------------------------------------------


def test_normalise_name() -> None:
    assert normalise_name("Seán's") == "sean"
    assert normalise_name("O'Sullivan") == "osullivan"
    assert normalise_name("J. Kinsella") == "j kinsella"
    assert normalise_name("  Zoë   ŁUKASZ ") == "zoe lukasz"


def test_an_index_gives_the_same_answers_as_resolve_name() -> None:
    index = RosterIndex(ROSTER, ALIASES)
    for raw in ("Seán", "Kelly", "Podge", "Xavier", "J. Kinsella"):
        assert index.resolve(raw) == resolve(raw)


def test_status_compares_as_text() -> None:
    assert resolve("Kelly").status == "auto_resolved"
    assert resolve("Seán").status == "needs_disambiguation"
    assert resolve("Xavier").status == "unresolved"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.dictionaries(st.text(max_size=10), st.sampled_from(["p-sk", "x"])))
def test_any_mention_and_aliases(raw: str, aliases: dict[str, str]) -> None:
    result = resolve(raw, aliases)
    assert result.status in {AUTO, ASK, NONE}
    assert all(0 <= c.score <= 100 for c in result.candidates)
    assert len(result.candidates) <= 5
    if result.status is AUTO:
        assert result.entity_id in {e.entity_id for e in ROSTER}
