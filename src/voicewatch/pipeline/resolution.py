"""Entity resolution: which roster player or team a name in a coach's note means.

A coach says "Seán", "Kelly", "jj", "the bull", "Sean's", "J. Kinsella" or "rory
osullivan" (a transcript has no apostrophes); the roster says "Seán Kelly", "John Joe
Treacy", "Rory O'Sullivan". Resolution scores every roster entry against the mention and
answers with one of three statuses:

- ``auto_resolved``: a learned alias of this coach names the entity (aliases win first,
  because a person already said what the coach means), or the best match scores at
  least ``auto_threshold`` *and* beats the runner-up by ``margin``, so two players who
  share a first name never get picked by chance;
- ``needs_disambiguation``: some candidates score at least ``candidate_floor``; they are
  ranked, best first, for a person to choose (and that choice becomes an alias);
- ``unresolved``: nothing comes close.

Scores are on rapidfuzz's 0-100 scale. Text is compared after Unicode decomposition with
accents dropped and :func:`rapidfuzz.utils.default_process` (lower case, punctuation to
spaces), so "Seán Ó Briain" and "sean o briain" are equal. The forms a name takes:

- the full name (also with spaces removed, for "osullivan" against "O'Sullivan");
- a first name alone, worth :data:`FIRST_NAME_SCORE` at most: sure enough when one
  player has it, ambiguous when two do;
- a surname alone, worth :data:`SURNAME_SCORE`;
- an initial and a surname ("J. Kinsella"), or another first name and the surname
  ("paddy nolan" for Patrick Nolan), or a nickname the coach taught and the surname;
- a near miss of a learned alias ("podgey" for "podge"): a candidate, never automatic.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from voicewatch.model import ResolutionStatus

__all__ = [
    "AUTO_THRESHOLD",
    "CANDIDATE_FLOOR",
    "MARGIN",
    "NAME_PARTICLES",
    "SPECIAL_FOLD",
    "Candidate",
    "Resolution",
    "RosterEntry",
    "RosterIndex",
    "normalise_name",
    "resolve_name",
    "strip_accents",
]

AUTO_THRESHOLD = 88.0
CANDIDATE_FLOOR = 60.0
MARGIN = 6.0
FIRST_NAME_SCORE = 90.0
SURNAME_SCORE = 89.0
PREFIX_SCORE = 80.0
INITIAL_SURNAME_SCORE = 92.0
ALIAS_SURNAME_SCORE = 97.0
ALIAS_NEAR_FACTOR = 0.92
SUBSET_FACTOR = 0.94

#: Name particles ("Ó", "Mac", "van") that belong to a surname; shared with the claims extractor.
NAME_PARTICLES = frozenset(
    {
        "al",
        "bean",
        "da",
        "das",
        "de",
        "del",
        "den",
        "der",
        "di",
        "dos",
        "du",
        "el",
        "la",
        "le",
        "mac",
        "mc",
        "ni",
        "nic",
        "o",
        "st",
        "ua",
        "ui",
        "van",
        "von",
    }
)
_PARTICLES = NAME_PARTICLES
#: Words a coach puts before a name that are not part of it ("young Seán", "the bull"
#: keeps its "the" for the alias lookup, which happens first).
_PREFIXES = frozenset({"the", "young", "little", "big", "wee", "auld", "old", "coach"})
#: Letters NFKD cannot strip to ASCII; shared with the claims extractor.
SPECIAL_FOLD = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ß": "ss",
        "æ": "ae",
        "Æ": "Ae",
        "œ": "oe",
        "Œ": "Oe",
        "\u0131": "i",
        "þ": "th",
        "ð": "d",
    }
)
_SPECIAL_FOLD = SPECIAL_FOLD


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """A player or team of an organisation, as resolution sees it."""

    entity_id: str
    name: str
    entity_type: str = "player"  # "player" | "team"
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A roster entry and how well it matches the mention (0-100), and by which form."""

    entity_id: str
    name: str
    entity_type: str
    team: str | None
    score: float
    matched_on: str


@dataclass(frozen=True)
class Resolution:
    """The outcome for one mention: a status, ranked candidates and why."""

    raw: str
    status: ResolutionStatus
    candidates: tuple[Candidate, ...]
    reason: str

    @property
    def best(self) -> Candidate | None:
        """The highest-scoring candidate, whatever the status."""
        return self.candidates[0] if self.candidates else None

    @property
    def entity_id(self) -> str | None:
        """The chosen entity when resolution was automatic, else ``None``."""
        if self.status is ResolutionStatus.AUTO_RESOLVED and self.candidates:
            return self.candidates[0].entity_id
        return None


def strip_accents(text: str) -> str:
    """``text`` without accents or special letters ("Seán" -> "Sean", "Ørsted" -> "Orsted").

    The one fold of names used everywhere: entity resolution, the claims
    extractor's name spans and the recogniser's roster hints must agree on it,
    or a name found in one would be missed by the next.
    """
    text = unicodedata.normalize("NFKD", text.translate(_SPECIAL_FOLD))
    return "".join(c for c in text if not unicodedata.combining(c))


def _strip_possessive(text: str) -> str:
    text = text.strip().replace("\u2019", "'").replace("`", "'")
    if text.lower().endswith("'s"):
        return text[:-2]
    if text.endswith("'"):
        return text[:-1]
    return text


def normalise_name(text: str) -> str:
    """The comparable form of a name: no possessive, accents, apostrophes or punctuation.

    "Seán's" → "sean"; "O'Sullivan" → "osullivan"; "J. Kinsella" → "j kinsella".
    """
    text = _strip_possessive(unicodedata.normalize("NFC", str(text)))
    text = strip_accents(text).replace("'", "")
    return " ".join(default_process(text).split())


def _alias_key(text: str) -> str:
    """How the repository stores an alias: the raw text, stripped and lower-cased."""
    return str(text).strip().lower()


@dataclass(frozen=True, slots=True)
class _Forms:
    entry: RosterEntry
    full: str
    compact: str
    tokens: tuple[str, ...]
    first: str | None
    surname: str | None
    aliases: tuple[str, ...]


class RosterIndex:
    """A roster and a coach's aliases prepared once, for resolving many mentions.

    ``aliases`` maps the coach's lower-cased raw text to an ``entity_id``; aliases that
    point at an entity no longer on the roster are ignored.
    """

    def __init__(self, roster: Sequence[RosterEntry], aliases: Mapping[str, str]) -> None:
        self._by_id: dict[str, RosterEntry] = {}
        for entry in roster:
            self._by_id.setdefault(entry.entity_id, entry)
        self._alias_exact: dict[str, str] = {}
        self._alias_norm: dict[str, str] = {}
        alias_names: dict[str, list[str]] = {}
        for raw, entity_id in aliases.items():
            if entity_id not in self._by_id or not str(raw).strip():
                continue
            self._alias_exact.setdefault(_alias_key(raw), entity_id)
            norm = normalise_name(raw)
            if norm:
                self._alias_norm.setdefault(norm, entity_id)
                alias_names.setdefault(entity_id, []).append(norm)
        self._forms = [
            self._forms_of(entry, tuple(alias_names.get(entry.entity_id, ())))
            for entry in self._by_id.values()
        ]

    @staticmethod
    def _forms_of(entry: RosterEntry, aliases: tuple[str, ...]) -> _Forms:
        full = normalise_name(entry.name)
        tokens = tuple(full.split())
        first = tokens[0] if len(tokens) >= 2 and tokens[0] not in _PARTICLES else None
        surname = None
        if len(tokens) >= 2:
            k = (
                len(tokens) - 2
                if len(tokens) >= 3 and tokens[-2] in _PARTICLES
                else len(tokens) - 1
            )
            if not (len(tokens) == 2 and tokens[0] in _PARTICLES):
                surname = "".join(tokens[k:])
        return _Forms(entry, full, full.replace(" ", ""), tokens, first, surname, aliases)

    def resolve(
        self,
        raw: str,
        *,
        auto_threshold: float = AUTO_THRESHOLD,
        candidate_floor: float = CANDIDATE_FLOOR,
        margin: float = MARGIN,
        limit: int = 5,
    ) -> Resolution:
        """Resolve one mention; see the module docstring for the rules."""
        raw = "" if raw is None else str(raw)
        limit = max(1, int(limit))
        alias_hit = self._alias_exact.get(_alias_key(raw)) or self._alias_exact.get(
            _alias_key(_strip_possessive(raw))
        )
        query = normalise_name(raw)
        if alias_hit is None and query:
            alias_hit = self._alias_norm.get(query)
        if alias_hit is not None:
            entry = self._by_id[alias_hit]
            best = Candidate(
                entry.entity_id, entry.name, entry.entity_type, entry.team, 100.0, "alias"
            )
            return Resolution(raw, ResolutionStatus.AUTO_RESOLVED, (best,), "learned alias")
        if not query:
            return Resolution(raw, ResolutionStatus.UNRESOLVED, (), "nothing to match")
        scored: list[Candidate] = []
        for forms in self._forms:
            score, how = self._score(query, forms)
            if score >= candidate_floor:
                e = forms.entry
                scored.append(Candidate(e.entity_id, e.name, e.entity_type, e.team, score, how))
        scored.sort(key=lambda c: (-c.score, c.name, c.entity_id))
        if not scored:
            return Resolution(
                raw, ResolutionStatus.UNRESOLVED, (), f"no roster entry scores {candidate_floor:g}+"
            )
        best = scored[0]
        runner_up = scored[1].score if len(scored) > 1 else 0.0
        if best.score >= auto_threshold and best.score - runner_up >= margin:
            return Resolution(
                raw,
                ResolutionStatus.AUTO_RESOLVED,
                tuple(scored[:limit]),
                f"{best.matched_on} match {best.score:.0f}, next {runner_up:.0f}",
            )
        if best.score >= auto_threshold:
            reason = f"{len([c for c in scored if best.score - c.score < margin])} close matches"
        else:
            reason = f"best match {best.score:.0f} is below {auto_threshold:g}"
        return Resolution(raw, ResolutionStatus.NEEDS_DISAMBIGUATION, tuple(scored[:limit]), reason)

    def _score(self, query: str, forms: _Forms) -> tuple[float, str]:
        best = (0.0, "")
        bases = [query]
        tokens_all = query.split()
        if len(tokens_all) > 1 and tokens_all[0] in _PREFIXES:
            bases.append(" ".join(tokens_all[1:]))  # "young Seán", "the U14s"
        variants: list[tuple[str, float]] = []
        for base in bases:
            variants.append((base, 0.0))
            if base.endswith("s") and len(base) > 3:
                # a transcript's possessive ("seans") or a plural team ("u14s")
                variants.append((base[:-1], 1.0))
        for text, penalty in variants:
            for score, how in self._forms_scores(text, forms):
                if score - penalty > best[0]:
                    best = (score - penalty, how)
        return best

    @staticmethod
    def _forms_scores(query: str, f: _Forms) -> list[tuple[float, str]]:
        q_tokens = query.split()
        compact = query.replace(" ", "")
        out = [
            (max(fuzz.ratio(query, f.full), fuzz.token_sort_ratio(query, f.full)), "full name"),
            (fuzz.ratio(compact, f.compact), "full name"),
        ]
        for alias in f.aliases:
            out.append((fuzz.ratio(query, alias) * ALIAS_NEAR_FACTOR, "near alias"))
        if len(q_tokens) == 1:
            word = q_tokens[0]
            if f.first:
                similarity = fuzz.ratio(word, f.first)
                if similarity >= 80:
                    out.append((FIRST_NAME_SCORE * similarity / 100, "first name"))
                if len(word) >= 3 and f.first.startswith(word) and word != f.first:
                    out.append((PREFIX_SCORE, "first name prefix"))
            if f.surname:
                similarity = fuzz.ratio(word, f.surname)
                if similarity >= 80:
                    out.append((SURNAME_SCORE * similarity / 100, "surname"))
            return out
        head, rest = q_tokens[0], "".join(q_tokens[1:])
        if f.surname:
            similarity = fuzz.ratio(compact, f.surname)
            if similarity >= 80:
                out.append((SURNAME_SCORE * similarity / 100, "surname"))
        if f.surname and fuzz.ratio(rest, f.surname) >= 90:
            if len(head) == 1 and f.first and f.first.startswith(head):
                out.append((INITIAL_SURNAME_SCORE, "initial and surname"))
            elif head in f.aliases:
                out.append((ALIAS_SURNAME_SCORE, "alias and surname"))
            elif len(head) > 1 and f.first:
                out.append((78.0 + 0.14 * fuzz.ratio(head, f.first), "surname"))
        if set(q_tokens) <= set(f.tokens) and len(q_tokens) >= 2:
            out.append((SUBSET_FACTOR * fuzz.token_set_ratio(query, f.full), "part of name"))
        return out


def resolve_name(
    raw: str,
    roster: Sequence[RosterEntry],
    aliases: Mapping[str, str],
    *,
    auto_threshold: float = AUTO_THRESHOLD,
    candidate_floor: float = CANDIDATE_FLOOR,
    margin: float = MARGIN,
    limit: int = 5,
) -> Resolution:
    """Resolve one mention against ``roster`` and the coach's ``aliases``.

    For many mentions against one roster, build a :class:`RosterIndex` once instead.
    """
    return RosterIndex(roster, aliases).resolve(
        raw,
        auto_threshold=auto_threshold,
        candidate_floor=candidate_floor,
        margin=margin,
        limit=limit,
    )
