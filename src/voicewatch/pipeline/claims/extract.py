"""Step 7 of the claims extractor, and the whole run: one claim per clause and topic.

:func:`extract_claims` chains the steps (text, names, lexicon, clauses) and gives each
clause its topic or topics with a confidence from the lexicon evidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from voicewatch.pipeline.claims.clauses import (
    MIN_TOPIC_SCORE,
    Seg,
    merge_sentences,
    resolve_references,
    segment_sentence,
)
from voicewatch.pipeline.claims.lexicon import COMBOS
from voicewatch.pipeline.claims.names import name_index
from voicewatch.pipeline.claims.text import clean_text, split_sentences
from voicewatch.pipeline.topics import FALLBACK_TOPIC

#: A second topic in the same clause becomes its own claim when it is this strong
#: relative to the first, and at least :data:`MIN_SECOND_SCORE`.
SECOND_TOPIC_RATIO = 0.6
MIN_SECOND_SCORE = 2.0


@dataclass(frozen=True)
class Claim:
    """One atomic fact from a note.

    ``mentioned_names`` are the names as the coach said them (possessive dropped);
    matching them to roster entries is the entity-resolution stage's job.
    ``negated`` says the topic's evidence was negated ("no injuries from the weekend"),
    and ``evidence`` lists the cues that chose the topic, so a reviewer can see why.
    """

    topic: str
    source_text: str
    mentioned_names: tuple[str, ...]
    extraction_confidence: float
    negated: bool = False
    evidence: tuple[str, ...] = ()


def _caseless(text: str) -> bool:
    """A transcript without capitals (or all in capitals) carries no name signal in case."""
    words = re.findall(r"[^\W\d_]+", text)
    if not words:
        return True
    capitalised = sum(1 for w in words if w[0].isupper() and w not in {"I", "I'm", "I'll"})
    shouting = sum(1 for w in words if len(w) > 1 and w.isupper())
    return capitalised == 0 or shouting > 0.6 * len(words)


#: A match result is the team's: the players named beside it belong to another claim.
_TEAM_ONLY_TOPICS = frozenset({"match_result"})


def _confidence(score: float, runner_up: float, seg: Seg) -> float:
    strength = 1.0 - math.exp(-score / 2.5)
    margin = (score - runner_up) / score if score > 0 else 0.0
    value = 0.25 + 0.6 * strength * (0.6 + 0.4 * margin)
    if seg.names:
        value += 0.08
    if seg.inherited:
        value -= 0.05
    if seg.negated_weight and not seg.plain_weight:
        value *= 0.85
    return round(min(0.99, max(0.05, value)), 3)


def _claims_of(seg: Seg, text: str) -> list[Claim]:
    for topic, a, b, bonus in COMBOS:
        if seg.stems & a and seg.stems & b:
            seg.scores[topic] = seg.scores.get(topic, 0.0) + bonus
    source = " ".join(text[seg.start : seg.end].split())
    names = tuple(seg.names)
    negated = bool(seg.negated_weight) and not seg.plain_weight
    evidence = tuple(dict.fromkeys(seg.evidence))
    ranked = sorted(seg.scores.items(), key=lambda ts: (-ts[1], ts[0] == FALLBACK_TOPIC, ts[0]))
    if not ranked or ranked[0][1] < MIN_TOPIC_SCORE:
        confidence = 0.3 + (0.05 if names else 0.0) + min(0.1, seg.scores.get("general", 0) / 10)
        return [Claim(FALLBACK_TOPIC, source, names, round(confidence, 3), negated, evidence)]
    best, best_score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    claims = [
        Claim(
            best,
            source,
            () if best in _TEAM_ONLY_TOPICS else names,
            _confidence(best_score, runner_up, seg),
            negated,
            evidence,
        )
    ]
    if best in _TEAM_ONLY_TOPICS and names:
        # The players named beside a result still get their own claim: the clause's next
        # topic ("Keisha dropped 28 in the win") or, failing one, a general note.
        others = [(t, sc) for t, sc in ranked[1:] if t not in _TEAM_ONLY_TOPICS]
        topic, score = others[0] if others else (FALLBACK_TOPIC, 0.0)
        if score < MIN_TOPIC_SCORE:
            topic = FALLBACK_TOPIC
        confidence = _confidence(score, best_score, seg) if score else 0.3
        return [*claims, Claim(topic, source, names, confidence, negated, evidence)]
    second = ranked[1][0] if len(ranked) > 1 else FALLBACK_TOPIC
    if (
        second != FALLBACK_TOPIC
        and runner_up >= MIN_SECOND_SCORE
        and runner_up >= SECOND_TOPIC_RATIO * best_score
    ):
        confidence = round(_confidence(runner_up, best_score, seg) * 0.9, 3)
        second_names = () if second in _TEAM_ONLY_TOPICS else names
        claims.append(Claim(second, source, second_names, confidence, negated, evidence))
    return claims


def extract_claims(
    text: str, roster_names: Sequence[str] = (), *, nicknames: Iterable[str] = ()
) -> list[Claim]:
    """The atomic claims of a coach's note, in the order the coach said them.

    ``roster_names`` are the organisation's player (or team) names; ``nicknames`` are
    extra spellings the coach is known to use (the keys of the learned aliases), which
    lets a lower-case transcript's "jj" or "the bull" count as a name. Any string is
    accepted; an empty or content-free note gives an empty list.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    cleaned = clean_text(text)
    if not cleaned:
        return []
    roster = tuple(str(n) for n in roster_names if isinstance(n, str) and n.strip())
    nicks = tuple(str(n) for n in nicknames if isinstance(n, str) and n.strip())
    index = name_index(roster[:5000], nicks[:5000])
    caseless = _caseless(cleaned)
    segments: list[Seg] = []
    for number, span in enumerate(split_sentences(cleaned)):
        segments.extend(segment_sentence(cleaned, span, number, index, caseless))
    segments = merge_sentences(segments)
    resolve_references(segments)
    claims: list[Claim] = []
    for seg in segments:
        claims.extend(_claims_of(seg, cleaned))
    return claims
