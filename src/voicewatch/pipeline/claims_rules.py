"""The offline claims extractor: a coach's note becomes atomic, topic-labelled claims.

Deterministic rules, no model and no network, so the pipeline does the real job with no
AI account and the result of a note never changes between runs. The steps:

1. Clean the text (HTML tags and entities, odd quotes, control characters).
2. Split it into sentences on ``. ! ?`` and newlines, without breaking on titles
   ("Dr. Walsh"), initials ("J. Kinsella"), abbreviations or decimals ("6.30pm").
3. Find player names: the roster's full names, first names, surnames and nicknames,
   matched case- and accent-insensitively and through possessives ("Sean's",
   "doyles"), plus capitalised words that behave like a person's name when the roster
   does not know them. Common words that are also names ("will", "mark") count only
   where a name can stand.
4. Score the topic lexicons of :mod:`voicewatch.pipeline.topics` over stemmed tokens;
   a cue inside the scope of a negation ("no injuries", "not at training") counts for
   less, because it reports the absence of the thing.
5. Cut each sentence into clauses at conjunctions, commas, discourse markers ("also",
   "another thing", "and then") and, in unpunctuated transcripts, where a new subject
   starts; then glue back the pieces that do not carry a fact of their own, so that one
   sentence with two facts about two players gives two claims and a list of names stays
   one claim.
6. Give a clause without a name the name of the player it is about when a pronoun or a
   missing subject points back to the previous claim ("Told his dad...").
7. Emit one claim per clause and topic, with a confidence from the lexicon evidence.

It must not fail on any string: every step is linear in the text, and the text is cut at
:data:`MAX_TEXT_CHARS`.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from voicewatch.pipeline.resolution import NAME_PARTICLES, strip_accents
from voicewatch.pipeline.topics import (
    COMBOS,
    FALLBACK_TOPIC,
    NEUTRAL_PHRASES,
    POSITION_WEIGHT,
    POSITIONS,
    TOPICS,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "Claim",
    "clean_text",
    "extract_claims",
    "fold",
    "split_sentences",
    "stem",
]

#: Longer input is cut here: a voice note is a few hundred words, and the cut keeps the
#: cost of a pathological input bounded.
MAX_TEXT_CHARS = 100_000

#: A clause needs this much lexicon evidence to stand as a claim on its own.
MIN_EVIDENCE = 1.5
#: Below this, the best topic is not trusted and the claim is ``general``.
MIN_TOPIC_SCORE = 0.75
#: A second topic in the same clause becomes its own claim when it is this strong
#: relative to the first, and at least :data:`MIN_SECOND_SCORE`.
SECOND_TOPIC_RATIO = 0.6
MIN_SECOND_SCORE = 2.0
#: A negated cue counts for this share of its weight.
NEGATED_FACTOR = 0.6
#: How many tokens after "not", "no", "didn't"... a negation reaches.
NEGATION_SCOPE = 4
#: A nameless sentence shorter than this (in words) is a remark on the previous claim.
MIN_STANDALONE_WORDS = 5


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


# --- text normalisation ---------------------------------------------------------------

_TAG_RE = re.compile(r"<[^<>]{0,500}>")
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u02bc": "'",
        "\u2032": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
    }
)


def clean_text(text: str) -> str:
    """The note as plain text: tags and entities gone, quotes and dashes unified.

    Control and format characters become spaces (a zero-width joiner must not glue two
    words), runs of spaces collapse, and line breaks survive because they end sentences.
    """
    text = text[:MAX_TEXT_CHARS]
    if "<" in text:
        text = _TAG_RE.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    text = "".join(" " if (unicodedata.category(c)[0] == "C" and c != "\n") else c for c in text)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n[\n ]*", "\n", text)
    return text.strip()


def fold(text: str) -> str:
    """Lower-case ``text`` and strip accents, so "Seán", "SEAN" and "sean" compare equal."""
    return strip_accents(text).lower()


_SUFFIXES = ("ingly", "ings", "ing", "edly", "ied", "ies", "ed", "es", "s", "ly", "y", "e")


def stem(word: str) -> str:
    """A light stemmer: strip one common suffix and a doubled final consonant.

    Not linguistics: the lexicons and the notes go through the same function, so all
    that matters is that "injured", "injury" and "injuries" land on one key, and that
    "running" and "run" do.
    """
    if len(word) > 3 and word.isalpha():
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


# --- tokens ---------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"\d+(?:-\d+)+"  # score lines and formations: 2-18, 4-3-3
    r"|\d+(?:[.:,]\d+)*[^\W\d_]*"  # numbers, times and measures: 6.30pm, 120kg, 100th
    r"|[^\W\d_][^\W_]*(?:'[^\W_]+)*'?"  # words, with inner apostrophes: didn't, O'Neill
    r"|[^\w\s]"  # anything else, one character at a time: punctuation, emoji
)
_SCORE_RE = re.compile(r"^\d+(?:-\d+)+$")
_FORMATION_RE = re.compile(r"^\d-\d-\d(?:-\d)?$")


@dataclass(slots=True)
class _Tok:
    text: str
    start: int
    end: int
    norm: str  # folded, apostrophes removed
    name_norm: str  # as norm, possessive removed
    stem: str
    is_word: bool
    is_cap: bool
    possessive: bool


def _tokenise(text: str, offset: int = 0) -> list[_Tok]:
    tokens: list[_Tok] = []
    for m in _TOKEN_RE.finditer(text):
        raw = m.group()
        low = fold(raw)
        possessive = False
        base = low
        if base.endswith("'s") and len(base) > 2:
            base, possessive = base[:-2], True
        elif base.endswith("'") and len(base) > 1:
            base, possessive = base[:-1], True
        norm = low.replace("'", "")
        is_word = raw[0].isalnum()
        tokens.append(
            _Tok(
                text=raw,
                start=offset + m.start(),
                end=offset + m.end(),
                norm=norm,
                name_norm=base.replace("'", ""),
                stem=(low if "'" in low.strip("'") else stem(norm)) if is_word else raw,
                is_word=is_word,
                is_cap=raw[0].isupper(),
                possessive=possessive,
            )
        )
    return tokens


# --- sentence splitting ---------------------------------------------------------------

#: Titles: a full stop after them never ends a sentence ("Dr. Walsh").
_TITLES = frozenset(
    {"dr", "mr", "mrs", "ms", "fr", "st", "prof", "sgt", "capt", "rev", "sr", "jr", "mt", "br"}
)
#: Abbreviations that end a sentence only when a capital letter follows.
_ABBREVIATIONS = frozenset(
    {
        "vs",
        "v",
        "eg",
        "e.g",
        "ie",
        "i.e",
        "etc",
        "approx",
        "no",
        "nos",
        "incl",
        "ca",
        "cf",
        "min",
        "mins",
        "hr",
        "hrs",
        "sec",
        "secs",
        "wk",
        "wks",
        "yr",
        "yrs",
        "re",
        "pp",
        "al",
    }
)
_BOUNDARY_RE = re.compile(r"[.!?\u2026]+(?=\s|$)|\n+")
_PREV_WORD_RE = re.compile(r"([^\W_](?:[^\W_]|\.)*)$")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of the (cleaned) text as ``(start, end)`` character offsets.

    A full stop followed by a space ends a sentence unless it closes a title, an
    initial before a capitalised word, or an abbreviation before a lower-case word.
    Decimals ("5.4", "6.30pm") never split because no space follows their point.
    Unpunctuated transcripts come back as one sentence; the clause splitter cuts them.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY_RE.finditer(text):
        end = m.end()
        if m.group()[0] == "." and len(m.group()) == 1:
            before = _PREV_WORD_RE.search(text[max(0, m.start() - 40) : m.start()])
            word = before.group(1).lower() if before else ""
            after = text[end:].lstrip()
            nxt = after[:1]
            if word in _TITLES:
                continue
            if len(word) == 1 and word.isalpha() and nxt.isupper():
                continue
            if word.rstrip(".") in _ABBREVIATIONS and nxt and not nxt.isupper():
                continue
        if text[start : m.start()].strip():
            spans.append((start, end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


# --- lexicons -------------------------------------------------------------------------

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
    for tok in _tokenise(phrase.replace("*", " \x00 ")):
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
_COMBOS = tuple(
    (topic, frozenset(stem(w) for w in a), frozenset(stem(w) for w in b), bonus)
    for topic, a, b, bonus in COMBOS
)
_SCORING_VERBS = frozenset(stem(w) for w in ("scored", "hit", "kicked", "got", "put", "tally"))


@dataclass(slots=True)
class _Hit:
    start: int  # token indexes, end exclusive
    end: int
    credits: tuple[tuple[str, float], ...]
    text: str
    negated: bool


def _negation_scope(tokens: Sequence[_Tok]) -> list[bool]:
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


def _match_lexicon(tokens: Sequence[_Tok], names: Sequence[tuple[int, int]]) -> list[_Hit]:
    """Longest-first, left-to-right matches of the lexicon; a match consumes its tokens."""
    in_name = [False] * len(tokens)
    for a, b in names:
        for k in range(a, b):
            in_name[k] = True
    scope = _negation_scope(tokens)
    hits: list[_Hit] = []
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
                hits.append(_Hit(i, end, found.credits, found.text, negated))
            i = end
            continue
        if _SCORE_RE.match(tok.text):
            if _FORMATION_RE.match(tok.text):
                credit = (("tactics", 2.0),)
            elif any(tokens[k].stem in _SCORING_VERBS for k in range(max(0, i - 2), i)):
                credit = (("performance", 1.5),)
            else:
                credit = (("match_result", 1.5),)
            hits.append(_Hit(i, i + 1, credit, tok.text, False))
        i += 1
    return hits


# --- names ----------------------------------------------------------------------------


def _words(listing: str) -> frozenset[str]:
    """A word set written as running text, easier to read and extend than a literal."""
    return frozenset(listing.split())


_PARTICLES = NAME_PARTICLES

_STOPWORDS = _words(
    """a about above after again against all also am an and any are as at away back be because
    been before being below between both but by can cant could couldnt did didnt do does doesnt
    doing done dont down during each even ever every few for from further get gets got had hadnt
    has hasnt have havent having he hed hell hes her here hers herself him himself his how i id
    ill im ive if in into is isnt it its itself just let lets like me more most much must my
    myself never no nor not now of off on once only or other our ours ourselves out over own
    same she shed shell shes should so some such than that thats the their theirs them
    themselves then there theres these they theyd theyll theyre theyve this those through to
    too under until up upon us very was wasnt we wed well were weve what whats when where which
    while who whom whose why will with wont would wouldnt yeah yes yet you youd youll youre
    youve your yours yourself ok okay right so lads girls boys everyone everybody nobody
    someone somebody anyone anybody noone nothing something anything one two three four five
    six seven eight nine ten eleven twelve first second third last next another great good
    lovely brilliant well also plus still really maybe please thanks cheers hi hello hey team
    training match game session today tonight tomorrow yesterday week weekend month year
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december christmas easter halloween summer
    winter spring autumn need needs going plan reminder congrats note full time lost beat won
    drew told met had wants not numbers parents mam mum dad coach coaches ref referee
    physio doc doctor mr mrs ms dr fr sir miss reminder update quick"""
)

#: English words that are also first names or surnames: lower-case, they are words.
_NAME_WORDS = _words(
    """will mark max grace hope faith joy rose may june april august dawn summer autumn sue pat
    bill rob art frank ray guy drew chase hunter mason miles gene lance grant ward power price
    brown green white black young long little king hill wood bell rush page cook baker walker
    hall best sharp strong hart field bishop major noble golden street wells banks marsh butler
    fox hunt carpenter taylor smith bush day head love moody rich joy eve sky river storm"""
)

_TITLE_WORDS = frozenset(_TITLES | {"coach", "ref", "referee", "doctor", "sister", "father"})
_OPPONENT_CUES = frozenset(
    {
        "against",
        "v",
        "vs",
        "versus",
        "beat",
        "beating",
        "to",
        "at",
        "in",
        "from",
        "over",
        "playing",
        "play",
        "played",
        "into",
        "for",
        "with",
        "the",
        "a",
        "an",
        "our",
        "their",
        "his",
        "her",
        "my",
        "your",
        "by",
        "of",
        "on",
        "near",
        "around",
        "up",
    }
)
_TEAM_SUFFIXES = _words(
    """gaa fc rfc afc united utd city rovers celtic tigers harps athletic town rangers wanderers
    academy school college park game match squad panel team club stadium road street cup
    league championship final shield county minors juniors seniors"""
)
_VERBISH = _words(
    """is was has had hasnt hadnt wasnt isnt did didnt does doesnt got gets will wont can cant
    could couldnt should would wouldnt needs need made makes scored scores kicked hit hits came
    comes went goes wants wanted asked said says told tried tries played plays trained looked
    looks seems seemed gave gives took takes missed misses rolled pulled broke felt feels
    thinks reckons turned showed left started starts finished hurt picked dropped passed are
    were keeps kept loves struggled struggles improved cried fouled hasnt won lost threw
    apologised skipped forgot think reckon feel worry want know guess hope have"""
)
_ADVERBS = _words(
    """also really just still never always finally definitely probably actually already even
    only both all again has have had been"""
)
_SUBJECT_PRONOUNS = frozenset(
    {"he", "she", "they", "we", "i", "hes", "shes", "theyre", "im", "ive", "id", "weve", "were"}
)
_THIRD_PERSON = frozenset(
    {
        "he",
        "she",
        "him",
        "her",
        "his",
        "hers",
        "himself",
        "herself",
        "hes",
        "shes",
        "they",
        "them",
        "their",
        "theyre",
        "both",
        "hed",
        "shed",
        "hell",
        "shell",
        "themselves",
    }
)
_TEAM_WORDS = frozenset(
    {
        "we",
        "us",
        "our",
        "lads",
        "girls",
        "boys",
        "team",
        "everyone",
        "everybody",
        "squad",
        "group",
        "were",
        "weve",
        "wed",
        "ours",
        "nobody",
        "all",
        "parents",
    }
)
_BLOCK_BEFORE_SUBJECT = _words(
    """and or nor but so because cos cause that if when whether as since until unless though
    although while where which who whom whose what how than like think thinks thought reckon
    reckons said says say know knows knew feel feels felt hope hopes guess worry told tell
    asked ask with to for about of at on by from into in over under after before between
    against the a an his her their our my your its both all is was are were be been"""
)
#: Before a name, only words that take it as an object or join it to a list stop a new
#: clause: "after mia dolan is making progress" starts one, "told Sean he..." does not.
_BLOCK_BEFORE_NAME = _words(
    """with to for about of at on by from into over under than like between against told
    tell asked ask saw see seen the a an our my your and or nor is was are were be been both
    all"""
)
_LEADING_FILLERS = _words(
    """and but so then also plus ehm em erm um uh uhm yeah yep right ok okay well anyway like
    oh because cos cause while whereas although though"""
)
_CONJUNCTIONS = frozenset(
    {
        "and",
        "but",
        "so",
        "because",
        "cos",
        "cause",
        "then",
        "while",
        "whereas",
        "although",
        "though",
        "which",
        "plus",
    }
)
_MARKERS: tuple[tuple[str, ...], ...] = (
    ("on", "another", "note"),
    ("other", "than", "that"),
    ("apart", "from", "that"),
    ("as", "well", "as", "that"),
    ("the", "other", "thing"),
    ("one", "more", "thing"),
    ("in", "other", "news"),
    ("on", "top", "of", "that"),
    ("another", "thing"),
    ("besides", "that"),
    ("and", "then"),
    ("oh", "and"),
    ("anyway",),
    ("meanwhile",),
    ("also",),
)
_BASE_VERBS = _words(
    """ring call talk have give check tell explain speak see get do send make keep let try put
    sort chat text email follow be need"""
)


def _lexicon_words() -> frozenset[str]:
    words: set[str] = set()
    for topic in TOPICS:
        for cue in topic.cues:
            parts = cue.split()
            if len(parts) == 1:
                words.add(fold(parts[0]).replace("'", ""))
    return frozenset(words)


_COMMON = _STOPWORDS | _NAME_WORDS | _lexicon_words()


@dataclass(frozen=True, slots=True)
class _NameForm:
    tokens: tuple[str, ...]
    kind: str  # full | first | surname | nickname


class _NameIndex:
    """The roster's names broken into the forms a coach says: full, first, surname, nickname."""

    def __init__(self, roster_names: Sequence[str], nicknames: Sequence[str]) -> None:
        forms: dict[tuple[str, ...], str] = {}
        for name in roster_names:
            for variant in self._variants(name):
                self._add_forms(forms, variant)
        for nick in nicknames:
            toks = tuple(t.name_norm for t in _tokenise(nick) if t.is_word)
            if toks:
                forms.setdefault(toks, "nickname")
        by_first: dict[str, list[_NameForm]] = {}
        for toks, kind in forms.items():
            by_first.setdefault(toks[0], []).append(_NameForm(toks, kind))
        self.by_first = {k: sorted(v, key=lambda f: -len(f.tokens)) for k, v in by_first.items()}

    @staticmethod
    def _variants(name: str) -> list[tuple[str, ...]]:
        words = [t for t in _tokenise(name) if t.is_word]
        plain = tuple(t.name_norm for t in words)
        variants = [plain] if plain else []
        # "O'Sullivan" is also said and transcribed as "O Sullivan".
        split: list[str] = []
        for t in words:
            m = re.match(r"^([a-z])'(\w+)$", fold(t.text))
            split.extend([m.group(1), m.group(2)] if m else [t.name_norm])
        if tuple(split) != plain and split:
            variants.append(tuple(split))
        return variants

    @staticmethod
    def _add_forms(forms: dict[tuple[str, ...], str], toks: tuple[str, ...]) -> None:
        forms[toks] = "full"
        if len(toks) < 2:
            return
        if toks[0] not in _PARTICLES:
            forms.setdefault(toks[:1], "first")
        if len(toks) >= 3 and toks[1] not in _PARTICLES:
            forms.setdefault(toks[:2], "first")
        k = len(toks) - 1
        if len(toks) >= 3 and toks[-2] in _PARTICLES:
            k = len(toks) - 2
        elif len(toks) == 2 and toks[0] in _PARTICLES:
            return
        forms.setdefault(toks[k:], "surname")
        if k == len(toks) - 2 and len(toks[-1]) >= 4:
            forms.setdefault(toks[-1:], "surname")


@lru_cache(maxsize=128)
def _name_index(roster: tuple[str, ...], nicknames: tuple[str, ...]) -> _NameIndex:
    return _NameIndex(roster, nicknames)


def _next_word(tokens: Sequence[_Tok], j: int) -> _Tok | None:
    """The first word after index ``j - 1``, skipping adverbs ("Ava also scored")."""
    skipped = 0
    while j < len(tokens) and skipped <= 2:
        tok = tokens[j]
        if not tok.is_word:
            return None
        if tok.norm in _ADVERBS and tok.norm not in _VERBISH:
            j += 1
            skipped += 1
            continue
        return tok
    return None


def _verb_follows(tokens: Sequence[_Tok], j: int, *, allow_ed: bool) -> bool:
    tok = _next_word(tokens, j)
    if tok is None:
        return False
    if tok.norm in _VERBISH:
        return True
    return allow_ed and len(tok.norm) > 4 and tok.norm.endswith("ed")


@dataclass(slots=True)
class _Mention:
    start: int  # token indexes, end exclusive
    end: int
    text: str
    on_roster: bool
    kind: str = "full"


def _find_names(
    tokens: Sequence[_Tok], text: str, index: _NameIndex, caseless: bool
) -> list[_Mention]:
    """Roster names first (longest form wins), then name-like capitalised words."""
    mentions: list[_Mention] = []
    taken = [False] * len(tokens)
    first_word = next((k for k, t in enumerate(tokens) if t.is_word), 0)
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        if not tok.is_word:
            i += 1
            continue
        match = _match_roster(tokens, i, index, caseless, i == first_word)
        if match is None:
            i += 1
            continue
        end, form, s_variant = match
        start = i
        if form.kind == "surname":
            start = _extend_left(tokens, i, caseless, taken)
        surface = text[tokens[start].start : tokens[end - 1].end]
        mention = _Mention(start, end, _strip_possessive(surface, s_variant), True, form.kind)
        previous = mentions[-1] if mentions else None
        if (
            previous is not None
            and previous.end == start
            and previous.kind in {"first", "nickname"}
            and form.kind == "surname"
            and not tokens[previous.end - 1].possessive
        ):
            # "paddy nolan", "Mikey Costello": a first name or nickname and a surname
            whole = text[tokens[previous.start].start : tokens[end - 1].end]
            mentions[-1] = _Mention(
                previous.start, end, _strip_possessive(whole, s_variant), True, "full"
            )
        else:
            mentions.append(mention)
        for k in range(start, end):
            taken[k] = True
        i = end
    if not caseless:
        mentions.extend(_capitalised_names(tokens, text, taken, first_word))
    mentions.sort(key=lambda m: m.start)
    return mentions


def _match_roster(
    tokens: Sequence[_Tok], i: int, index: _NameIndex, caseless: bool, initial: bool
) -> tuple[int, _NameForm, bool] | None:
    tok = tokens[i]
    keys = [tok.name_norm]
    if tok.name_norm.endswith("s") and len(tok.name_norm) > 3 and not tok.possessive:
        keys.append(tok.name_norm[:-1])
    candidates: list[_NameForm] = []
    for key in keys:
        candidates.extend(index.by_first.get(key, ()))
    candidates.sort(key=lambda f: -len(f.tokens))
    for form in candidates:
        length = len(form.tokens)
        if i + length > len(tokens):
            continue
        s_variant = False
        ok = True
        for k, part in enumerate(form.tokens):
            t = tokens[i + k]
            if not t.is_word:
                ok = False
                break
            if t.name_norm == part:
                continue
            if (
                k == length - 1
                and not t.possessive
                and t.name_norm.endswith("s")
                and t.name_norm[:-1] == part
            ):
                s_variant = True
                continue
            ok = False
            break
        if not ok:
            continue
        if length == 1 and not _accept_single(tokens, i, caseless, initial):
            continue
        return i + length, form, s_variant
    return None


def _accept_single(tokens: Sequence[_Tok], i: int, caseless: bool, initial: bool) -> bool:
    """Whether a one-word roster form ("Sean", "will") is a name here, not a word."""
    tok = tokens[i]
    common = tok.name_norm in _COMMON
    if not common:
        return caseless or tok.is_cap or len(tok.name_norm) > 2
    prev = tokens[i - 1].norm if i > 0 else ""
    if tok.is_cap and not caseless and not initial:
        return True
    if prev in _SUBJECT_PRONOUNS or prev in {"to", "you", "it", "that", "this"}:
        return False
    follower = _next_word(tokens, i + 1)
    if follower is not None and follower.norm in _SUBJECT_PRONOUNS:
        return False
    listed = (
        tok.is_cap
        and not caseless
        and i + 2 < len(tokens)
        and tokens[i + 1].norm in {"and", "&", ","}
        and tokens[i + 2].is_cap
        and tokens[i + 2].norm not in _COMMON
    )  # "Grace and Amara are doing extra conditioning"
    return listed or _verb_follows(tokens, i + 1, allow_ed=False) or tok.possessive


def _extend_left(tokens: Sequence[_Tok], i: int, caseless: bool, taken: Sequence[bool]) -> int:
    """Take in an initial ("J. Kinsella") or an unknown first name ("paddy nolan")."""
    j = i - 1
    if j >= 0 and tokens[j].text == "." and j - 1 >= 0:
        prev = tokens[j - 1]
        if len(prev.text) == 1 and prev.text.isalpha() and prev.is_cap and not taken[j - 1]:
            return j - 1
    if j >= 0 and not taken[j]:
        prev = tokens[j]
        if len(prev.text) == 1 and prev.text.isalpha() and prev.is_cap:
            return j
        if (
            prev.is_word
            and prev.text.isalpha()
            and prev.norm not in _COMMON
            and len(prev.norm) > 2
            and (prev.is_cap or caseless)
        ):
            return j
    return i


def _strip_possessive(surface: str, s_variant: bool) -> str:
    surface = surface.strip()
    if surface.endswith("'s"):
        return surface[:-2]
    if surface.endswith("'"):
        return surface[:-1]
    if s_variant and surface.endswith("s"):
        return surface[:-1]
    return surface


def _capitalised_names(
    tokens: Sequence[_Tok], text: str, taken: Sequence[bool], first_word: int
) -> list[_Mention]:
    """Capitalised words the roster does not know that stand where a person's name stands.

    They must be followed by a verb or a possessive, or be listed with a known player,
    and not follow a title ("Dr. Walsh"), an opponent or place cue ("against Oranmore",
    "from Australia"), nor precede a club word ("Tralee Tigers", "Galway game").
    """
    out: list[_Mention] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        if taken[i] or not _is_name_like(tok):
            i += 1
            continue
        j = i + 1
        while j < n and not taken[j] and _is_name_like(tokens[j]) and not tokens[j - 1].possessive:
            j += 1
        last = tokens[j - 1]
        prev = tokens[i - 1] if i > 0 else None
        after = tokens[j] if j < n else None
        initial = i == first_word
        reject = (
            (prev is not None and (prev.norm in _TITLE_WORDS or prev.norm in _OPPONENT_CUES))
            or (prev is not None and prev.text == "." and i >= 2 and tokens[i - 2].norm in _TITLES)
            or (after is not None and after.is_word and after.norm in _TEAM_SUFFIXES)
            or (
                after is not None
                and not after.is_word
                and after.text == "-"
                and j + 1 < n
                and tokens[j + 1].text[:1].isdigit()
            )
            or (after is not None and after.text[:1].isdigit())
            or (initial and j - i == 1 and tok.name_norm in _COMMON)
            or (initial and j - i == 1 and tok.name_norm.endswith("s") and not tok.possessive)
        )
        listed = (prev is not None and prev.norm in {"and", ","} and i >= 2 and taken[i - 2]) or (
            after is not None and after.norm == "and" and j + 1 < n and taken[j + 1]
        )
        standing = last.possessive or _verb_follows(tokens, j, allow_ed=not initial) or listed
        if not reject and standing:
            surface = text[tok.start : last.end]
            out.append(_Mention(i, j, _strip_possessive(surface, False), False))
        i = j
    return out


def _is_name_like(tok: _Tok) -> bool:
    if not tok.is_word or not tok.is_cap or not tok.text[0].isalpha():
        return False
    if any(c.isdigit() for c in tok.text):
        return False
    if len(tok.text) > 1 and tok.text.isupper() and not tok.possessive:
        return False
    return tok.name_norm not in _STOPWORDS and len(tok.name_norm) > 1


# --- clauses --------------------------------------------------------------------------


@dataclass
class _Seg:
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

    def absorb(self, other: _Seg) -> None:
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
    tokens: Sequence[_Tok],
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
        if tok.norm in _CONJUNCTIONS and i > 0:
            if tok.norm == "and" and (i - 1 in name_ends) and i + 1 in name_starts:
                i += 1
                continue
            cuts.append((i, 1))
            i += 1
            continue
        if i > 0 and _subject_starts(tokens, i, name_starts, caseless):
            prev = tokens[i - 1]
            blocked = _BLOCK_BEFORE_NAME if i in name_starts else _BLOCK_BEFORE_SUBJECT
            if prev.is_word and prev.norm not in blocked:
                cuts.append((i, 0))
        i += 1
    return cuts


def _name_ends(name_starts: dict[int, int]) -> frozenset[int]:
    return frozenset(end - 1 for end in name_starts.values())


def _marker_at(
    tokens: Sequence[_Tok], i: int, protected: Sequence[bool], name_ends: frozenset[int]
) -> int:
    for marker in _MARKERS:
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
                    prev.norm in _SUBJECT_PRONOUNS
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


def _after_name_list(tokens: Sequence[_Tok], i: int, name_starts: dict[int, int]) -> int:
    """The index after a list of names starting at ``i`` ("tom and james", "A, B and C")."""
    j = name_starts[i]
    for _ in range(12):  # a longer list is not a sentence's subject
        if j + 1 < len(tokens) and tokens[j].norm in {"and", ",", "&"} and j + 1 in name_starts:
            j = name_starts[j + 1]
        else:
            break
    return j


def _subject_starts(
    tokens: Sequence[_Tok], i: int, name_starts: dict[int, int], caseless: bool
) -> bool:
    tok = tokens[i]
    if i in name_starts:
        return _verb_follows(tokens, _after_name_list(tokens, i, name_starts), allow_ed=True)
    if tok.norm in _SUBJECT_PRONOUNS - {"were"}:
        return _verb_follows(tokens, i + 1, allow_ed=True) or tok.norm in {"hes", "shes", "im"}
    if caseless and tok.norm == "ill" and i + 1 < len(tokens):
        return tokens[i + 1].norm in _BASE_VERBS
    return False


def _segment_sentence(
    text: str,
    span: tuple[int, int],
    sentence_no: int,
    index: _NameIndex,
    caseless: bool,
) -> list[_Seg]:
    tokens = _tokenise(text[span[0] : span[1]], span[0])
    if not tokens:
        return []
    mentions = _find_names(tokens, text, index, caseless)
    name_starts = {m.start: m.end for m in mentions}
    hits = _match_lexicon(tokens, [(m.start, m.end) for m in mentions])
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
    segments: list[_Seg] = []
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
    tokens: Sequence[_Tok],
    a: int,
    b: int,
    mentions: Sequence[_Mention],
    hits: Sequence[_Hit],
    sentence_no: int,
) -> _Seg | None:
    anchored = {m.start for m in mentions} | {h.start for h in hits}
    while a < b and (not tokens[a].is_word or tokens[a].norm in _LEADING_FILLERS):
        if a in anchored:
            break
        a += 1
    while b > a and not tokens[b - 1].is_word and tokens[b - 1].text in ",;:-(.":
        b -= 1
    if a >= b:
        return None
    seg = _Seg(tokens[a].start, tokens[b - 1].end, sentence_no)
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
    seg.third_person = any(t.norm in _THIRD_PERSON for t in words)
    seg.team_words = any(t.norm in _TEAM_WORDS for t in words)
    first = words[0] if words else None
    seg.verb_start = bool(
        first is not None
        and not seg.names
        and (first.norm in _VERBISH or first.norm in {"wants", "needs", "been", "hasnt"})
    )
    return seg


def _merge_pieces(pieces: list[_Seg]) -> list[_Seg]:
    """Glue clause pieces that do not state a fact of their own to their neighbour."""
    out: list[_Seg] = []
    pending: _Seg | None = None
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


def _belongs_to(piece: _Seg, prev: _Seg) -> bool:
    if piece.weak:
        return True
    if piece.names and piece.evidence_weight < MIN_TOPIC_SCORE and not piece.clause:
        return True  # a list of names continues the previous clause
    same_people = not piece.names or piece.name_keys <= prev.name_keys
    return bool(same_people and piece.top == prev.top)


def _caseless(text: str) -> bool:
    """A transcript without capitals (or all in capitals) carries no name signal in case."""
    words = re.findall(r"[^\W\d_]+", text)
    if not words:
        return True
    capitalised = sum(1 for w in words if w[0].isupper() and w not in {"I", "I'm", "I'll"})
    shouting = sum(1 for w in words if len(w) > 1 and w.isupper())
    return capitalised == 0 or shouting > 0.6 * len(words)


_TEAM_TOPICS = frozenset({"match_result", "tactics"})
#: A match result is the team's: the players named beside it belong to another claim.
_TEAM_ONLY_TOPICS = frozenset({"match_result"})


def _resolve_references(segments: list[_Seg]) -> None:
    """Give a nameless clause the names of the clause its pronoun or missing subject means."""
    last_named: _Seg | None = None
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


def _confidence(score: float, runner_up: float, seg: _Seg) -> float:
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


def _claims_of(seg: _Seg, text: str) -> list[Claim]:
    for topic, a, b, bonus in _COMBOS:
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
    index = _name_index(roster[:5000], nicks[:5000])
    caseless = _caseless(cleaned)
    segments: list[_Seg] = []
    for number, span in enumerate(split_sentences(cleaned)):
        segments.extend(_segment_sentence(cleaned, span, number, index, caseless))
    segments = _merge_sentences(segments)
    _resolve_references(segments)
    claims: list[Claim] = []
    for seg in segments:
        claims.extend(_claims_of(seg, cleaned))
    return claims


def _merge_sentences(segments: list[_Seg]) -> list[_Seg]:
    """Short nameless sentences with no topic of their own ("Respect that.") join the
    previous claim; longer ones stay as ``general`` notes about the team."""
    out: list[_Seg] = []
    pending: _Seg | None = None
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
