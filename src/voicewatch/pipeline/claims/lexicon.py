"""Step 4 of the claims extractor: score the topic lexicons over a sentence's tokens.

The cues of :mod:`voicewatch.pipeline.topics` are compiled once into patterns of stems,
matched longest first; a cue inside the scope of a negation ("no injuries", "not at
training") is marked, because it reports the absence of the thing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from voicewatch.pipeline.claims.text import Tok, stem, tokenise
from voicewatch.pipeline.topics import (
    COMBOS as TOPIC_COMBOS,
)
from voicewatch.pipeline.topics import (
    NEUTRAL_PHRASES,
    POSITION_WEIGHT,
    POSITIONS,
    TOPICS,
)

#: A negated cue counts for this share of its weight.
NEGATED_FACTOR = 0.6
#: How many tokens after "not", "no", "didn't"... a negation reaches.
NEGATION_SCOPE = 4

_SCORE_RE = re.compile(r"^\d+(?:-\d+)+$")
_FORMATION_RE = re.compile(r"^\d-\d-\d(?:-\d)?$")

_WILDCARD = "*"
_NEGATORS = frozenset(
    {
        "not",
        "no",
        "never",
        "nobody",
        "nothing",
        "none",
        "without",
        "hardly",
        "barely",
        "cant",
        "cannot",
        "dont",
        "didnt",
        "doesnt",
        "isnt",
        "wasnt",
        "arent",
        "werent",
        "hasnt",
        "havent",
        "hadnt",
        "wont",
        "wouldnt",
        "couldnt",
        "shouldnt",
        "aint",
        "nor",
        "neither",
        "nt",
    }
)
_SCOPE_BREAKERS = frozenset({"and", "but", "so", "because", "although", "though", "while"})


@dataclass(frozen=True, slots=True)
class _Pattern:
    stems: tuple[str, ...]
    credits: tuple[tuple[str, float], ...]  # (topic, weight); empty for a neutral phrase
    text: str
    explicit_negation: bool


def _pattern_stems(phrase: str) -> tuple[str, ...]:
    out: list[str] = []
    for tok in tokenise(phrase.replace("*", " \x00 ")):
        if tok.text == "\x00":
            out.append(_WILDCARD)
        elif tok.text.strip():
            out.append(tok.stem)
    return tuple(s for s in out if s)


def _compile_lexicon() -> dict[str, tuple[_Pattern, ...]]:
    table: dict[tuple[str, ...], dict[str, float]] = {}
    texts: dict[tuple[str, ...], str] = {}
    for topic in TOPICS:
        for cue, weight in topic.cues.items():
            stems = _pattern_stems(cue)
            if not stems or stems[0] == _WILDCARD:
                continue
            credits = table.setdefault(stems, {})
            credits[topic.name] = max(weight, credits.get(topic.name, 0.0))
            texts.setdefault(stems, cue)
    for phrase in POSITIONS:
        stems = _pattern_stems(phrase)
        if stems and stems not in table:
            table[stems] = {"selection": POSITION_WEIGHT}
            texts[stems] = phrase
    for phrase in NEUTRAL_PHRASES:
        stems = _pattern_stems(phrase)
        if stems and stems not in table:
            table[stems] = {}
            texts[stems] = phrase
    by_first: dict[str, list[_Pattern]] = {}
    for stems, credits in table.items():
        pattern = _Pattern(
            stems,
            tuple(sorted(credits.items())),
            texts[stems],
            any(s in _NEGATORS for s in stems) or stems[0] in {"nobody", "no"},
        )
        by_first.setdefault(stems[0], []).append(pattern)
    return {k: tuple(sorted(v, key=lambda p: -len(p.stems))) for k, v in by_first.items()}


_LEXICON = _compile_lexicon()
COMBOS = tuple(
    (topic, frozenset(stem(w) for w in a), frozenset(stem(w) for w in b), bonus)
    for topic, a, b, bonus in TOPIC_COMBOS
)
_SCORING_VERBS = frozenset(stem(w) for w in ("scored", "hit", "kicked", "got", "put", "tally"))


@dataclass(slots=True)
class Hit:
    """One lexicon match: the tokens it covers and the topics it credits."""

    start: int  # token indexes, end exclusive
    end: int
    credits: tuple[tuple[str, float], ...]
    text: str
    negated: bool


def _negation_scope(tokens: Sequence[Tok]) -> list[bool]:
    scope = [False] * len(tokens)
    remaining = 0
    for i, tok in enumerate(tokens):
        if not tok.is_word or tok.norm in _SCOPE_BREAKERS:
            remaining = 0
            continue
        if remaining:
            scope[i] = True
            remaining -= 1
        if tok.norm in _NEGATORS or (tok.norm.endswith("nt") and "'" in tok.text):
            remaining = NEGATION_SCOPE
    return scope


def match_lexicon(tokens: Sequence[Tok], names: Sequence[tuple[int, int]]) -> list[Hit]:
    """Longest-first, left-to-right matches of the lexicon; a match consumes its tokens."""
    in_name = [False] * len(tokens)
    for a, b in names:
        for k in range(a, b):
            in_name[k] = True
    scope = _negation_scope(tokens)
    hits: list[Hit] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        if in_name[i] or not tok.is_word:
            i += 1
            continue
        found: _Pattern | None = None
        for pattern in _LEXICON.get(tok.stem, ()):
            length = len(pattern.stems)
            if i + length > n:
                continue
            if all(
                (s == _WILDCARD and tokens[i + k].is_word) or tokens[i + k].stem == s
                for k, s in enumerate(pattern.stems)
            ) and not any(in_name[i + k] for k in range(length)):
                found = pattern
                break
        if found is not None:
            end = i + len(found.stems)
            if found.credits:
                negated = not found.explicit_negation and scope[i]
                hits.append(Hit(i, end, found.credits, found.text, negated))
            i = end
            continue
        if _SCORE_RE.match(tok.text):
            if _FORMATION_RE.match(tok.text):
                credit = (("tactics", 2.0),)
            elif any(tokens[k].stem in _SCORING_VERBS for k in range(max(0, i - 2), i)):
                credit = (("performance", 1.5),)
            else:
                credit = (("match_result", 1.5),)
            hits.append(Hit(i, i + 1, credit, tok.text, False))
        i += 1
    return hits
