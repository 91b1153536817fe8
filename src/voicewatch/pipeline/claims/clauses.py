"""Steps 5 and 6 of the claims extractor: cut sentences into clauses, resolve references.

A sentence is cut at conjunctions, commas, discourse markers ("also", "another thing",
"and then") and, in unpunctuated transcripts, where a new subject starts; then the
pieces that do not carry a fact of their own are glued back, so that one sentence with
two facts about two players gives two clauses and a list of names stays one. A clause
without a name takes the name of the player a pronoun or a missing subject points back
to ("Told his dad...").
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from voicewatch.pipeline.claims.lexicon import NEGATED_FACTOR, Hit, match_lexicon
from voicewatch.pipeline.claims.names import Mention, NameIndex, find_names, verb_follows
from voicewatch.pipeline.claims.text import Tok, fold, tokenise
from voicewatch.pipeline.claims.words import (
    BASE_VERBS,
    BLOCK_BEFORE_NAME,
    BLOCK_BEFORE_SUBJECT,
    CONJUNCTIONS,
    LEADING_FILLERS,
    MARKERS,
    SUBJECT_PRONOUNS,
    TEAM_WORDS,
    THIRD_PERSON,
    VERBISH,
)
from voicewatch.pipeline.topics import FALLBACK_TOPIC

#: A clause needs this much lexicon evidence to stand as a claim on its own.
MIN_EVIDENCE = 1.5
#: Below this, the best topic is not trusted and the claim is ``general``.
MIN_TOPIC_SCORE = 0.75
#: A nameless sentence shorter than this (in words) is a remark on the previous claim.
MIN_STANDALONE_WORDS = 5


@dataclass
class Seg:
    """A clause being built: its span, its names and its topic evidence, mergeable."""

    start: int  # character offsets into the cleaned text
    end: int
    sentence: int
    names: list[str] = field(default_factory=list)
    name_keys: set[str] = field(default_factory=set)
    scores: dict[str, float] = field(default_factory=dict)
    raw_scores: dict[str, float] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    negated_weight: float = 0.0
    plain_weight: float = 0.0
    words: int = 0
    third_person: bool = False
    team_words: bool = False
    verb_start: bool = False
    clause: bool = False  # starts with a subject and its verb: a statement of its own
    inherited: bool = False
    stems: set[str] = field(default_factory=set)

    @property
    def total(self) -> float:
        return max(self.scores.values(), default=0.0)

    @property
    def evidence_weight(self) -> float:
        """The best topic's weight with negated cues counted in full: how much the clause
        says about something, whether it asserts or denies it."""
        return max(self.raw_scores.values(), default=0.0)

    @property
    def top(self) -> str | None:
        if not self.scores:
            return None
        return max(self.scores.items(), key=lambda kv: (kv[1], kv[0] != FALLBACK_TOPIC))[0]

    @property
    def weak(self) -> bool:
        return not self.names and self.evidence_weight < MIN_EVIDENCE

    def add_name(self, name: str) -> None:
        key = fold(name)
        if key not in self.name_keys:
            self.name_keys.add(key)
            self.names.append(name)

    def absorb(self, other: Seg) -> None:
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        for name in other.names:
            self.add_name(name)
        for topic, score in other.scores.items():
            self.scores[topic] = self.scores.get(topic, 0.0) + score
        for topic, score in other.raw_scores.items():
            self.raw_scores[topic] = self.raw_scores.get(topic, 0.0) + score
        self.evidence.extend(other.evidence)
        self.negated_weight += other.negated_weight
        self.plain_weight += other.plain_weight
        self.words += other.words
        self.third_person |= other.third_person
        self.team_words |= other.team_words
        self.stems |= other.stems


def _boundaries(
    tokens: Sequence[Tok],
    protected: Sequence[bool],
    name_starts: dict[int, int],
    caseless: bool,
) -> list[tuple[int, int]]:
    """Where clauses may start: ``(first token of the new clause, tokens to skip)``."""
    cuts: list[tuple[int, int]] = []
    name_ends = _name_ends(name_starts)
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        if protected[i]:
            i += 1
            continue
        marker = _marker_at(tokens, i, protected, name_ends)
        if marker:
            cuts.append((i, marker))
            i += marker
            continue
        if not tok.is_word:
            spaced_dash = tok.text == "-" and i > 0 and tokens[i - 1].end < tok.start
            if tok.text in {",", ";", "(", ")", "!", "?"} or spaced_dash:
                cuts.append((i, 1))
            i += 1
            continue
        if tok.norm in CONJUNCTIONS and i > 0:
            if tok.norm == "and" and (i - 1 in name_ends) and i + 1 in name_starts:
                i += 1
                continue
            cuts.append((i, 1))
            i += 1
            continue
        if i > 0 and _subject_starts(tokens, i, name_starts, caseless):
            prev = tokens[i - 1]
            blocked = BLOCK_BEFORE_NAME if i in name_starts else BLOCK_BEFORE_SUBJECT
            if prev.is_word and prev.norm not in blocked:
                cuts.append((i, 0))
        i += 1
    return cuts


def _name_ends(name_starts: dict[int, int]) -> frozenset[int]:
    return frozenset(end - 1 for end in name_starts.values())


def _marker_at(
    tokens: Sequence[Tok], i: int, protected: Sequence[bool], name_ends: frozenset[int]
) -> int:
    for marker in MARKERS:
        length = len(marker)
        if i + length > len(tokens):
            continue
        if all(tokens[i + k].norm == marker[k] for k in range(length)) and not any(
            protected[i + k] for k in range(length)
        ):
            if marker in {("also",), ("and", "then")}:
                prev = tokens[i - 1] if i > 0 else None
                if prev is None and marker == ("also",):
                    return length
                if prev is not None and (
                    prev.norm in SUBJECT_PRONOUNS
                    or prev.norm
                    in {
                        "is",
                        "was",
                        "has",
                        "have",
                        "had",
                        "will",
                        "can",
                        "are",
                        "were",
                        "did",
                        "would",
                        "could",
                        "should",
                        "and",
                    }
                    or (i - 1) in name_ends
                ):
                    return 0
                if i + length >= len(tokens) or not tokens[i + length].is_word:
                    return 0
            return length
    return 0


def _after_name_list(tokens: Sequence[Tok], i: int, name_starts: dict[int, int]) -> int:
    """The index after a list of names starting at ``i`` ("tom and james", "A, B and C")."""
    j = name_starts[i]
    for _ in range(12):  # a longer list is not a sentence's subject
        if j + 1 < len(tokens) and tokens[j].norm in {"and", ",", "&"} and j + 1 in name_starts:
            j = name_starts[j + 1]
        else:
            break
    return j


def _subject_starts(
    tokens: Sequence[Tok], i: int, name_starts: dict[int, int], caseless: bool
) -> bool:
    tok = tokens[i]
    if i in name_starts:
        return verb_follows(tokens, _after_name_list(tokens, i, name_starts), allow_ed=True)
    if tok.norm in SUBJECT_PRONOUNS - {"were"}:
        return verb_follows(tokens, i + 1, allow_ed=True) or tok.norm in {"hes", "shes", "im"}
    if caseless and tok.norm == "ill" and i + 1 < len(tokens):
        return tokens[i + 1].norm in BASE_VERBS
    return False


def segment_sentence(
    text: str,
    span: tuple[int, int],
    sentence_no: int,
    index: NameIndex,
    caseless: bool,
) -> list[Seg]:
    tokens = tokenise(text[span[0] : span[1]], span[0])
    if not tokens:
        return []
    mentions = find_names(tokens, text, index, caseless)
    name_starts = {m.start: m.end for m in mentions}
    hits = match_lexicon(tokens, [(m.start, m.end) for m in mentions])
    protected = [False] * len(tokens)
    for m in mentions:
        for k in range(m.start + 1, m.end):
            protected[k] = True
    for h in hits:
        for k in range(h.start + 1, h.end):
            protected[k] = True
    cuts = _boundaries(tokens, protected, name_starts, caseless)
    pieces: list[tuple[int, int]] = []
    cursor = 0
    for at, skip in cuts:
        if at > cursor:
            pieces.append((cursor, at))
        cursor = max(cursor, at + skip)
    if cursor < len(tokens):
        pieces.append((cursor, len(tokens)))

    mention_starts = [m.start for m in mentions]
    hit_starts = [h.start for h in hits]
    segments: list[Seg] = []
    for a, b in pieces:
        lo, hi = bisect_left(mention_starts, a), bisect_left(mention_starts, b)
        hlo, hhi = bisect_left(hit_starts, a), bisect_left(hit_starts, b)
        seg = _analyse(tokens, a, b, mentions[lo:hi], hits[hlo:hhi], sentence_no)
        if seg is not None:
            first = next((k for k in range(a, b) if tokens[k].end > seg.start), a)
            seg.clause = _subject_starts(tokens, first, name_starts, caseless)
            segments.append(seg)
    return _merge_pieces(segments)


def _analyse(
    tokens: Sequence[Tok],
    a: int,
    b: int,
    mentions: Sequence[Mention],
    hits: Sequence[Hit],
    sentence_no: int,
) -> Seg | None:
    anchored = {m.start for m in mentions} | {h.start for h in hits}
    while a < b and (not tokens[a].is_word or tokens[a].norm in LEADING_FILLERS):
        if a in anchored:
            break
        a += 1
    while b > a and not tokens[b - 1].is_word and tokens[b - 1].text in ",;:-(.":
        b -= 1
    if a >= b:
        return None
    seg = Seg(tokens[a].start, tokens[b - 1].end, sentence_no)
    for m in mentions:
        if a <= m.start < b:
            seg.add_name(m.text)
    for h in hits:
        if a <= h.start < b:
            factor = NEGATED_FACTOR if h.negated else 1.0
            for topic, weight in h.credits:
                seg.scores[topic] = seg.scores.get(topic, 0.0) + weight * factor
                seg.raw_scores[topic] = seg.raw_scores.get(topic, 0.0) + weight
                if h.negated:
                    seg.negated_weight += weight
                else:
                    seg.plain_weight += weight
            seg.evidence.append(("not " if h.negated else "") + h.text)
    words = [t for t in tokens[a:b] if t.is_word]
    seg.words = len(words)
    seg.stems = {t.stem for t in words}
    seg.third_person = any(t.norm in THIRD_PERSON for t in words)
    seg.team_words = any(t.norm in TEAM_WORDS for t in words)
    first = words[0] if words else None
    seg.verb_start = bool(
        first is not None
        and not seg.names
        and (first.norm in VERBISH or first.norm in {"wants", "needs", "been", "hasnt"})
    )
    return seg


def _merge_pieces(pieces: list[Seg]) -> list[Seg]:
    """Glue clause pieces that do not state a fact of their own to their neighbour."""
    out: list[Seg] = []
    pending: Seg | None = None
    for piece in pieces:
        if pending is not None:
            piece.absorb(pending)
            pending = None
        if not out:
            if piece.weak:
                pending = piece
            else:
                out.append(piece)
            continue
        prev = out[-1]
        if _belongs_to(piece, prev) or (prev.evidence_weight < MIN_EVIDENCE and not piece.names):
            prev.absorb(piece)
        elif (
            piece.names
            and not prev.names
            and prev.words < MIN_STANDALONE_WORDS
            and prev.top == piece.top
        ):
            piece.absorb(prev)  # a short lead-in: "fitness testing tonight, sinead had..."
            out[-1] = piece
        else:
            out.append(piece)
    if pending is not None:
        if out:
            out[-1].absorb(pending)
        else:
            out.append(pending)
    return out


def _belongs_to(piece: Seg, prev: Seg) -> bool:
    if piece.weak:
        return True
    if piece.names and piece.evidence_weight < MIN_TOPIC_SCORE and not piece.clause:
        return True  # a list of names continues the previous clause
    same_people = not piece.names or piece.name_keys <= prev.name_keys
    return bool(same_people and piece.top == prev.top)


_TEAM_TOPICS = frozenset({"match_result", "tactics"})


def resolve_references(segments: list[Seg]) -> None:
    """Give a nameless clause the names of the clause its pronoun or missing subject means."""
    last_named: Seg | None = None
    last_named_at = -10
    for k, seg in enumerate(segments):
        if seg.names:
            last_named, last_named_at = seg, k
            continue
        if last_named is None or k - last_named_at > 2:
            continue
        inherit = False
        if seg.third_person and not (seg.team_words and seg.top in _TEAM_TOPICS):
            inherit = True
        elif seg.top in _TEAM_TOPICS or seg.team_words:
            inherit = False
        elif seg.sentence == last_named.sentence or seg.verb_start:
            inherit = True
        if inherit:
            for name in last_named.names:
                seg.add_name(name)
            seg.inherited = True
            last_named, last_named_at = seg, k


def merge_sentences(segments: list[Seg]) -> list[Seg]:
    """Short nameless sentences with no topic of their own ("Respect that.") join the
    previous claim; longer ones stay as ``general`` notes about the team."""
    out: list[Seg] = []
    pending: Seg | None = None
    for seg in segments:
        if pending is not None:
            seg.absorb(pending)
            pending = None
        if seg.weak and (seg.words < MIN_STANDALONE_WORDS or seg.third_person):
            if out:
                out[-1].absorb(seg)
            else:
                pending = seg
            continue
        out.append(seg)
    if pending is not None:
        out.append(pending)
    return out
