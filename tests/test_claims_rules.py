"""The rules claims extractor: corpus score, sentence and clause splitting, topics,
negation, names, and robustness on any string."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicewatch.pipeline.claims import (
    MAX_TEXT_CHARS,
    Claim,
    clean_text,
    extract_claims,
    split_sentences,
    stem,
)
from voicewatch.pipeline.claims.scoring import (
    corpus_dir,
    format_report,
    load_corpus,
    rules_extractor,
    score_corpus,
)
from voicewatch.pipeline.topics import TOPIC_NAMES, TOPICS

HURLING = [
    "Diarmuid Hayes", "Colm Mullally", "Mark Phelan", "Richie Dalton", "Will Cleere",
    "John Joe Treacy", "Declan Brophy", "Shane Delaney",
]  # fmt: skip
U14 = ["Seán Ó Briain", "Seán Kelly", "Conor Doyle", "Oisín Walsh", "Tadhg Ó Súilleabháin"]


def sentences(text: str) -> list[str]:
    cleaned = clean_text(text)
    return [cleaned[a:b].strip() for a, b in split_sentences(cleaned)]


def topics_of(claims: list[Claim]) -> list[str]:
    return [c.topic for c in claims]


# --- the corpus ----------------------------------------------------------------------


def test_corpus_is_big_varied_and_well_formed() -> None:
    notes = load_corpus(split=None)
    rosters = json.loads((corpus_dir() / "rosters.json").read_text(encoding="utf-8"))
    assert len(notes) >= 60
    assert len({n.roster_key for n in notes}) >= 6
    sports = {rosters[n.roster_key]["sport"] for n in notes}
    assert {"gaelic_football", "hurling", "soccer", "rugby", "basketball"} <= sports
    unpunctuated = [n for n in notes if not any(p in n.text for p in ".,!?")]
    assert len(unpunctuated) >= 15
    assert {n.id for n in notes} == {n.id for n in notes if n.id} and len(
        {n.id for n in notes}
    ) == len(notes)
    seen_topics = set()
    for note in notes:
        assert note.expected, note.id
        for claim in note.expected:
            assert claim.topic in TOPIC_NAMES, (note.id, claim.topic)
            seen_topics.add(claim.topic)
            for player in claim.players:
                # a roster name, or a first name that is ambiguous on the roster
                assert player in note.roster or " " not in player, (note.id, player)
    assert seen_topics == set(TOPIC_NAMES)


def test_rules_extractor_f1_on_the_corpus() -> None:
    report = score_corpus(rules_extractor(), split="dev")
    assert report.overall.f1 >= 0.85, format_report(report)


#: The held-out notes were never used for tuning, so their F1 is the honest estimate on new
#: text: measured 0.672 (P 0.722, R 0.629) on 20 notes; the floor sits 0.03 under it so a
#: change that loses ground on unseen notes fails here, not in production.
HELDOUT_F1_FLOOR = 0.64


def test_rules_extractor_f1_on_the_held_out_notes() -> None:
    notes = load_corpus(split="heldout")
    assert len(notes) >= 20
    report = score_corpus(rules_extractor(), notes)
    assert report.overall.f1 >= HELDOUT_F1_FLOOR, format_report(report)


def test_rules_extractor_f1_with_roster_names_only() -> None:
    report = score_corpus(rules_extractor(use_nicknames=False), split="dev")
    assert report.overall.f1 >= 0.85, format_report(report)


def test_scoring_counts_pairs_per_note() -> None:
    note = load_corpus()[0]

    def perfect(n):  # the annotation itself, as claims
        return [Claim(c.topic, "x", tuple(c.players), 1.0) for c in n.expected]

    def nothing(n):
        return []

    assert score_corpus(perfect, [note]).overall.f1 == 1.0
    empty = score_corpus(nothing, [note]).overall
    assert (empty.tp, empty.fp, empty.precision, empty.f1) == (0, 0, 0.0, 0.0)
    assert empty.fn == len({(c.topic, p) for c in note.expected for p in c.players or [""]})


# --- sentences ------------------------------------------------------------------------


def test_sentences_do_not_break_on_titles_initials_abbreviations_or_decimals() -> None:
    text = (
        "Training Tuesday 6.30pm at the back pitch. Dr. Walsh will do the tests. "
        "J. Kinsella, T. Barrett and R. Jones need forms, i.e. the medical ones. "
        "His 40m sprint is 5.4 secs!! Great stuff"
    )
    assert sentences(text) == [
        "Training Tuesday 6.30pm at the back pitch.",
        "Dr. Walsh will do the tests.",
        "J. Kinsella, T. Barrett and R. Jones need forms, i.e. the medical ones.",
        "His 40m sprint is 5.4 secs!!",
        "Great stuff",
    ]


def test_sentences_break_on_newlines_and_lower_case_after_a_full_stop() -> None:
    assert sentences("sean was great. cian was late\nconor sick") == [
        "sean was great.",
        "cian was late",
        "conor sick",
    ]


def test_unpunctuated_transcript_splits_on_discourse_markers_and_new_subjects() -> None:
    text = (
        "right so we beat kilmacud by four points darragh was outstanding at midfield "
        "another thing conor doyle needs to do more running also need to ring oisins mam"
    )
    claims = extract_claims(text, ["Darragh Byrne", "Conor Doyle", "Oisín Walsh"])
    assert [(c.topic, c.mentioned_names) for c in claims] == [
        ("match_result", ()),
        ("performance", ("darragh",)),
        ("fitness", ("conor doyle",)),
        ("parent_communication", ("oisin",)),
    ]


# --- clauses --------------------------------------------------------------------------


def test_two_facts_about_two_players_become_two_claims() -> None:
    claims = extract_claims(
        "Adam is sick and Finn has a family wedding.", ["Adam Ryan", "Finn Kane"]
    )
    assert [(c.topic, c.mentioned_names) for c in claims] == [
        ("wellbeing", ("Adam",)),
        ("attendance", ("Finn",)),
    ]


def test_a_shared_fact_stays_one_claim_with_all_its_players() -> None:
    claims = extract_claims(
        "Éabha and Gráinne were late again tonight, both 20 mins.", ["Éabha Quinn", "Gráinne Dwyer"]
    )
    assert [(c.topic, c.mentioned_names) for c in claims] == [("attendance", ("Éabha", "Gráinne"))]


def test_a_list_of_names_is_one_selection_claim() -> None:
    claims = extract_claims(
        "Team for Sunday: Eoin in goal, Ruairí and Cathal corner backs, Liam at full forward.",
        ["Eoin Gallagher", "Ruairí Nolan", "Cathal Brennan", "Liam Kavanagh"],
    )
    assert len(claims) == 1
    assert claims[0].topic == "selection"
    assert claims[0].mentioned_names == ("Eoin", "Ruairí", "Cathal", "Liam")


def test_a_pronoun_takes_the_player_of_the_previous_claim() -> None:
    claims = extract_claims(
        "Seán Kelly has been complaining of pain in his knee. Told his dad to get it looked at.",
        U14,
    )
    assert [(c.topic, c.mentioned_names) for c in claims] == [
        ("injury", ("Seán Kelly",)),
        ("parent_communication", ("Seán Kelly",)),
    ]


def test_a_short_remark_joins_the_previous_claim() -> None:
    claims = extract_claims("Diarmuid Hayes asked to be left off the panel. Respect that.", HURLING)
    assert len(claims) == 1
    assert claims[0].source_text.endswith("Respect that")


def test_a_match_result_is_the_teams_and_the_player_keeps_a_claim() -> None:
    claims = extract_claims("We won by four points, Shane Delaney hit 0-6.", HURLING)
    assert ("match_result", ()) in [(c.topic, c.mentioned_names) for c in claims]
    assert ("performance", ("Shane Delaney",)) in [(c.topic, c.mentioned_names) for c in claims]


# --- topics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("Colm rolled his ankle and is seeing the physio", "injury"),
        ("Colm is very anxious before games", "wellbeing"),
        ("Colm was outstanding, man of the match", "performance"),
        ("Colm needs to work on his first touch", "skill"),
        ("Colm was late again", "attendance"),
        ("Colm got a straight red for dissent", "behaviour"),
        ("Colm has been in the gym doing the strength programme", "fitness"),
        ("Colm has been eating crisps and energy drinks before matches", "nutrition"),
        ("We need to push up on their kickouts", "tactics"),
        ("Colm is dropped to the bench for Sunday", "selection"),
        ("Need to ring Colm's mam about the gear", "parent_communication"),
        ("Colm's goal for the season is to nail down a starting spot", "goals"),
        ("Colm made his debut for the seniors", "development_milestone"),
        ("We lost by a point in the final", "match_result"),
        ("Colm still hasn't paid the registration fee", "general"),
    ],
)
def test_each_topic_is_recognised(text: str, topic: str) -> None:
    assert topics_of(extract_claims(text, HURLING))[0] == topic


def test_goals_scored_are_performance_and_goals_set_are_goals() -> None:
    assert topics_of(extract_claims("Colm scored two goals", HURLING)) == ["performance"]
    assert topics_of(extract_claims("Colm's goal is to make the county panel", HURLING)) == [
        "goals"
    ]
    assert topics_of(extract_claims("Colm got his first goal for the club", HURLING)) == [
        "development_milestone"
    ]


def test_stemming_joins_word_forms() -> None:
    assert stem("injured") == stem("injury") == stem("injuries")
    assert stem("running") == stem("run") == stem("runs")
    assert stem("dropped") == stem("drop")


def test_every_topic_has_a_definition_and_cues() -> None:
    assert len(TOPICS) == 15
    for topic in TOPICS:
        assert topic.definition
        assert topic.cues
        assert all(0 < w <= 2 for w in topic.cues.values())


# --- negation -------------------------------------------------------------------------


def test_negated_evidence_is_flagged_and_less_sure() -> None:
    none = extract_claims("No injuries from the weekend, everyone came through fine.")
    some = extract_claims("Two injuries from the weekend, everyone is sore.")
    assert topics_of(none) == topics_of(some) == ["injury"]
    assert none[0].negated and not some[0].negated
    assert none[0].extraction_confidence < some[0].extraction_confidence


def test_a_negated_cue_loses_to_an_asserted_one() -> None:
    claims = extract_claims("colm is sick not injured", HURLING)
    assert topics_of(claims) == ["wellbeing"]
    claims = extract_claims("Colm is not injured, he is just sick with a flu", HURLING)
    assert [(c.topic, c.negated) for c in claims] == [("injury", True), ("wellbeing", False)]


def test_explicitly_negative_phrases_are_not_discounted() -> None:
    claims = extract_claims("Podge didn't show again.", ["Pádraig Daly"])
    assert claims[0].topic == "attendance"
    assert not claims[0].negated


# --- names ----------------------------------------------------------------------------


def test_roster_first_names_and_surnames_match_case_and_accent_insensitively() -> None:
    claims = extract_claims("sean kelly was injured and tadhg got his first point", U14)
    assert [c.mentioned_names for c in claims] == [("sean kelly",), ("tadhg",)]
    claims = extract_claims("Kelly was brilliant", U14)
    assert claims[0].mentioned_names == ("Kelly",)


def test_possessives_are_dropped_from_names() -> None:
    claims = extract_claims("Seán's knee is sore. need to ring conor doyles mam", U14)
    assert [c.mentioned_names for c in claims] == [("Seán",), ("conor doyle",)]


def test_two_players_with_one_first_name_keep_the_name_as_said() -> None:
    claims = extract_claims("Seán was unreal in the first half.", U14)
    assert claims[0].mentioned_names == ("Seán",)  # resolution asks which Seán


def test_common_words_that_are_names_count_only_where_a_name_stands() -> None:
    claims = extract_claims(
        "will we go with the same fifteen for the final i think so mark phelan is flying",
        HURLING,
    )
    assert [c.mentioned_names for c in claims] == [(), ("mark phelan",)]
    claims = extract_claims("Will Cleere came off the bench. Will we start him?", HURLING)
    assert all(name == "Will Cleere" for c in claims for name in c.mentioned_names)
    roster = ["Max Hughes"]
    claims = extract_claims("max hughes gave max effort today", roster)
    assert claims[0].mentioned_names == ("max hughes",)


def test_unknown_capitalised_names_count_but_places_opponents_and_titles_do_not() -> None:
    claims = extract_claims(
        "Podge didn't show again. Aoife was player of the match against Oranmore. "
        "Dr. Walsh will do the concussion tests. Sorcha is back from Australia.",
        ["Aoife Kinsella"],
    )
    names = {n for c in claims for n in c.mentioned_names}
    assert names == {"Podge", "Aoife", "Sorcha"}


def test_initials_and_nicknames() -> None:
    claims = extract_claims(
        "J. Kinsella still needs to hand in his medical forms", ["James Kinsella"]
    )
    assert claims[0].mentioned_names == ("J. Kinsella",)
    claims = extract_claims(
        "jj's hamstring is at him again and the bull was immense",
        HURLING,
        nicknames=["jj", "the bull"],
    )
    assert [c.mentioned_names for c in claims] == [("jj",), ("the bull",)]


def test_no_roster_still_finds_names() -> None:
    claims = extract_claims("Aoife rolled her ankle. Niamh was brilliant.")
    assert [c.mentioned_names for c in claims] == [("Aoife",), ("Niamh",)]


# --- robustness -----------------------------------------------------------------------


def check(claims: list[Claim]) -> None:
    assert isinstance(claims, list)
    for claim in claims:
        assert claim.topic in TOPIC_NAMES
        assert 0.0 <= claim.extraction_confidence <= 1.0
        assert claim.source_text.strip()
        assert all(isinstance(n, str) and n for n in claim.mentioned_names)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        ".",
        "...!!!???",
        "🔥🔥🔥 ⚽️",
        "<script>alert('x')</script><b>Seán</b> was &amp; brilliant &#x1F525;",
        "\x00\x01\x02 sean \u200b\u200d was \ufeff injured",
        "שון נפצע בקרסול",
        "Seán " * 5000,
        "a. " * 5000,
        "and and and also also another thing and then",
        "'s 's ' '' - \u2013 \u2014 2-18 4-3-3 6.30pm",
        "\ud800 lone surrogate",
    ],
)
def test_odd_inputs_do_not_crash(text: str) -> None:
    check(extract_claims(text, U14))


def test_huge_input_is_cut_and_stays_fast() -> None:
    text = "Seán Kelly was injured and Conor Doyle was late. " * 10_000
    started = time.perf_counter()
    claims = extract_claims(text, U14)
    assert time.perf_counter() - started < 20
    check(claims)
    assert max(len(c.source_text) for c in claims) <= MAX_TEXT_CHARS


def test_bad_roster_entries_are_ignored() -> None:
    check(extract_claims("Seán was great", ["", "   ", "Seán Kelly", "x" * 10_000]))


def test_extraction_is_deterministic() -> None:
    note = load_corpus()[1]
    assert extract_claims(note.text, note.roster) == extract_claims(note.text, note.roster)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(max_size=400),
    st.lists(st.text(max_size=30), max_size=8),
)
def test_any_text_and_roster(text: str, roster: list[str]) -> None:
    check(extract_claims(text, roster, nicknames=roster[:2]))


COACH_WORDS = (
    "sean Seán kelly Kelly was is injured late brilliant and also another thing then not "
    "didn't goal scored the his her mam rang . , ! ? 2-18 Will will Mark"
)
words = st.sampled_from(COACH_WORDS.split(" "))


@settings(max_examples=300, deadline=None)
@given(st.lists(words, max_size=60))
def test_coach_like_word_salad(tokens: list[str]) -> None:
    check(extract_claims(" ".join(tokens), ["Seán Kelly", "Will Cleere", "Mark Phelan"]))
