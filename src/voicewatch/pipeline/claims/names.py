"""Step 3 of the claims extractor: find the player names in a sentence's tokens.

The roster's full names, first names, surnames and nicknames match case- and
accent-insensitively and through possessives ("Sean's", "doyles"); capitalised words
that behave like a person's name count too when the roster does not know them. Common
words that are also names ("will", "mark") count only where a name can stand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from voicewatch.pipeline.claims.text import TITLES, Tok, fold, tokenise
from voicewatch.pipeline.claims.words import (
    ADVERBS,
    COMMON,
    OPPONENT_CUES,
    PARTICLES,
    STOPWORDS,
    SUBJECT_PRONOUNS,
    TEAM_SUFFIXES,
    TITLE_WORDS,
    VERBISH,
)


@dataclass(frozen=True, slots=True)
class _NameForm:
    tokens: tuple[str, ...]
    kind: str  # full | first | surname | nickname


class NameIndex:
    """The roster's names broken into the forms a coach says: full, first, surname, nickname."""

    def __init__(self, roster_names: Sequence[str], nicknames: Sequence[str]) -> None:
        forms: dict[tuple[str, ...], str] = {}
        for name in roster_names:
            for variant in self._variants(name):
                self._add_forms(forms, variant)
        for nick in nicknames:
            toks = tuple(t.name_norm for t in tokenise(nick) if t.is_word)
            if toks:
                forms.setdefault(toks, "nickname")
        by_first: dict[str, list[_NameForm]] = {}
        for toks, kind in forms.items():
            by_first.setdefault(toks[0], []).append(_NameForm(toks, kind))
        self.by_first = {k: sorted(v, key=lambda f: -len(f.tokens)) for k, v in by_first.items()}

    @staticmethod
    def _variants(name: str) -> list[tuple[str, ...]]:
        words = [t for t in tokenise(name) if t.is_word]
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
        if toks[0] not in PARTICLES:
            forms.setdefault(toks[:1], "first")
        if len(toks) >= 3 and toks[1] not in PARTICLES:
            forms.setdefault(toks[:2], "first")
        k = len(toks) - 1
        if len(toks) >= 3 and toks[-2] in PARTICLES:
            k = len(toks) - 2
        elif len(toks) == 2 and toks[0] in PARTICLES:
            return
        forms.setdefault(toks[k:], "surname")
        if k == len(toks) - 2 and len(toks[-1]) >= 4:
            forms.setdefault(toks[-1:], "surname")


@lru_cache(maxsize=128)
def name_index(roster: tuple[str, ...], nicknames: tuple[str, ...]) -> NameIndex:
    return NameIndex(roster, nicknames)


def _next_word(tokens: Sequence[Tok], j: int) -> Tok | None:
    """The first word after index ``j - 1``, skipping adverbs ("Ava also scored")."""
    skipped = 0
    while j < len(tokens) and skipped <= 2:
        tok = tokens[j]
        if not tok.is_word:
            return None
        if tok.norm in ADVERBS and tok.norm not in VERBISH:
            j += 1
            skipped += 1
            continue
        return tok
    return None


def verb_follows(tokens: Sequence[Tok], j: int, *, allow_ed: bool) -> bool:
    tok = _next_word(tokens, j)
    if tok is None:
        return False
    if tok.norm in VERBISH:
        return True
    return allow_ed and len(tok.norm) > 4 and tok.norm.endswith("ed")


@dataclass(slots=True)
class Mention:
    """A name found in a sentence, as said, and whether the roster knows it."""

    start: int  # token indexes, end exclusive
    end: int
    text: str
    on_roster: bool
    kind: str = "full"


def find_names(tokens: Sequence[Tok], text: str, index: NameIndex, caseless: bool) -> list[Mention]:
    """Roster names first (longest form wins), then name-like capitalised words."""
    mentions: list[Mention] = []
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
        mention = Mention(start, end, _strip_possessive(surface, s_variant), True, form.kind)
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
            mentions[-1] = Mention(
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
    tokens: Sequence[Tok], i: int, index: NameIndex, caseless: bool, initial: bool
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


def _accept_single(tokens: Sequence[Tok], i: int, caseless: bool, initial: bool) -> bool:
    """Whether a one-word roster form ("Sean", "will") is a name here, not a word."""
    tok = tokens[i]
    common = tok.name_norm in COMMON
    if not common:
        return caseless or tok.is_cap or len(tok.name_norm) > 2
    prev = tokens[i - 1].norm if i > 0 else ""
    if tok.is_cap and not caseless and not initial:
        return True
    if prev in SUBJECT_PRONOUNS or prev in {"to", "you", "it", "that", "this"}:
        return False
    follower = _next_word(tokens, i + 1)
    if follower is not None and follower.norm in SUBJECT_PRONOUNS:
        return False
    listed = (
        tok.is_cap
        and not caseless
        and i + 2 < len(tokens)
        and tokens[i + 1].norm in {"and", "&", ","}
        and tokens[i + 2].is_cap
        and tokens[i + 2].norm not in COMMON
    )  # "Grace and Amara are doing extra conditioning"
    return listed or verb_follows(tokens, i + 1, allow_ed=False) or tok.possessive


def _extend_left(tokens: Sequence[Tok], i: int, caseless: bool, taken: Sequence[bool]) -> int:
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
            and prev.norm not in COMMON
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
    tokens: Sequence[Tok], text: str, taken: Sequence[bool], first_word: int
) -> list[Mention]:
    """Capitalised words the roster does not know that stand where a person's name stands.

    They must be followed by a verb or a possessive, or be listed with a known player,
    and not follow a title ("Dr. Walsh"), an opponent or place cue ("against Oranmore",
    "from Australia"), nor precede a club word ("Tralee Tigers", "Galway game").
    """
    out: list[Mention] = []
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
            (prev is not None and (prev.norm in TITLE_WORDS or prev.norm in OPPONENT_CUES))
            or (prev is not None and prev.text == "." and i >= 2 and tokens[i - 2].norm in TITLES)
            or (after is not None and after.is_word and after.norm in TEAM_SUFFIXES)
            or (
                after is not None
                and not after.is_word
                and after.text == "-"
                and j + 1 < n
                and tokens[j + 1].text[:1].isdigit()
            )
            or (after is not None and after.text[:1].isdigit())
            or (initial and j - i == 1 and tok.name_norm in COMMON)
            or (initial and j - i == 1 and tok.name_norm.endswith("s") and not tok.possessive)
        )
        listed = (prev is not None and prev.norm in {"and", ","} and i >= 2 and taken[i - 2]) or (
            after is not None and after.norm == "and" and j + 1 < n and taken[j + 1]
        )
        standing = last.possessive or verb_follows(tokens, j, allow_ed=not initial) or listed
        if not reject and standing:
            surface = text[tok.start : last.end]
            out.append(Mention(i, j, _strip_possessive(surface, False), False))
        i = j
    return out


def _is_name_like(tok: Tok) -> bool:
    if not tok.is_word or not tok.is_cap or not tok.text[0].isalpha():
        return False
    if any(c.isdigit() for c in tok.text):
        return False
    if len(tok.text) > 1 and tok.text.isupper() and not tok.possessive:
        return False
    return tok.name_norm not in STOPWORDS and len(tok.name_norm) > 1
