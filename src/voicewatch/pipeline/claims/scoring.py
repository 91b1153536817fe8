"""Scoring a claims extractor against the hand-annotated corpus of coach notes.

The corpus (``corpus/coach_notes.jsonl``, rosters in ``corpus/rosters.json``) holds
coach notes from Gaelic football, hurling, camogie, soccer, rugby and basketball teams,
youth and adult, typed or transcribed. Each note names its roster and lists the claims a
careful annotator expects, as ``{"topic": ..., "players": [...]}``.

What is measured: for each note, the set of (topic, player) pairs: one pair per player
of a claim, or (topic, none) for a claim about no player in particular ("we won by four
points"). Precision, recall and F1 are micro-averaged over all pairs of the corpus, so a
note with many claims weighs more than a note with one. Players are compared after
resolution: an expected player is the roster name (or, when the note cannot tell which
of two players is meant, the name as said, e.g. "Aoife" with two Aoifes on the roster);
a predicted mention is resolved with :func:`voicewatch.pipeline.resolution.resolve_name`
against the roster and the roster's known nicknames, and an unresolved mention counts
as the name as said. A spurious name (an opponent, a place) is therefore a false pair,
and so is a missed one.

Annotation guidelines (how the expectations were written, before the extractor was
tuned): one claim per atomic fact; a fact shared by several players ("Éabha and Gráinne
were late") is one claim with all of them; a clause about two players' different facts
is two claims; a pronoun takes the player it refers to; greetings and sign-offs are not
claims. Topic boundaries follow the definitions in :mod:`voicewatch.pipeline.topics`:
goals *scored* are performance, goals *set* are goals; captaincy, squad, bench and
suspensions are selection; illness is wellbeing; returning from an injury is injury;
availability and absences are attendance; a player's first score or start is a
development milestone.

Splits. ``"dev"`` notes are held in: the lexicons and rules were tuned while looking at
them, so their score is optimistic. ``"heldout"`` notes were written, annotated and scored
once after tuning stopped, and never used to tune; their score is the honest estimate on
new text. Twice a fresh batch was scored, then folded into ``dev`` for another round of
tuning; those notes carry an ``origin`` saying what they scored when still unseen.
:func:`score_corpus` reports on either split or both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from voicewatch.model import ResolutionStatus
from voicewatch.pipeline.claims import Claim, extract_claims
from voicewatch.pipeline.resolution import RosterEntry, RosterIndex, normalise_name
from voicewatch.pipeline.topics import TOPIC_NAMES

__all__ = [
    "CorpusNote",
    "ExpectedClaim",
    "NoteResult",
    "Prf",
    "ScoreReport",
    "corpus_dir",
    "format_report",
    "load_corpus",
    "score_corpus",
]

NONE_PLAYER = ""
Pair = tuple[str, str]
Extractor = Callable[["CorpusNote"], Sequence[Claim]]


@dataclass(frozen=True)
class ExpectedClaim:
    topic: str
    players: tuple[str, ...]


@dataclass(frozen=True)
class CorpusNote:
    """One annotated note with its roster and the nicknames its coach uses."""

    id: str
    roster_key: str
    roster: tuple[str, ...]
    aliases: Mapping[str, str]  # lower-cased nickname -> roster name
    text: str
    expected: tuple[ExpectedClaim, ...]
    channel: str = "text"
    split: str = "dev"


@dataclass
class Prf:
    """True positives, false positives and false negatives, with the derived rates."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, tp: int, fp: int, fn: int) -> None:
        self.tp += tp
        self.fp += fp
        self.fn += fn


@dataclass(frozen=True)
class NoteResult:
    note: CorpusNote
    expected: frozenset[Pair]
    predicted: frozenset[Pair]
    claims: tuple[Claim, ...]

    @property
    def missed(self) -> frozenset[Pair]:
        return self.expected - self.predicted

    @property
    def spurious(self) -> frozenset[Pair]:
        return self.predicted - self.expected


@dataclass
class ScoreReport:
    overall: Prf = field(default_factory=Prf)
    per_topic: dict[str, Prf] = field(default_factory=lambda: {t: Prf() for t in TOPIC_NAMES})
    notes: list[NoteResult] = field(default_factory=list)


def corpus_dir() -> Path:
    """Where the packaged corpus lives (a real directory: the package is not zipped)."""
    return Path(str(resources.files("voicewatch.pipeline") / "corpus"))


def load_corpus(path: Path | str | None = None, *, split: str | None = None) -> list[CorpusNote]:
    """The corpus notes, optionally only one ``split`` ("dev" or "heldout")."""
    notes_path = Path(path) if path else corpus_dir() / "coach_notes.jsonl"
    rosters = json.loads((notes_path.parent / "rosters.json").read_text(encoding="utf-8"))
    notes: list[CorpusNote] = []
    for line in notes_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        roster = rosters[row["roster"]]
        note = CorpusNote(
            id=row["id"],
            roster_key=row["roster"],
            roster=tuple(roster["players"]),
            aliases={k.lower(): v for k, v in roster.get("aliases", {}).items()},
            text=row["text"],
            expected=tuple(ExpectedClaim(c["topic"], tuple(c["players"])) for c in row["claims"]),
            channel=row.get("channel", "text"),
            split=row.get("split", "dev"),
        )
        if split is None or note.split == split:
            notes.append(note)
    return notes


def _index(note: CorpusNote) -> RosterIndex:
    entries = [RosterEntry(name, name, "player") for name in note.roster]
    return RosterIndex(entries, note.aliases)


def _expected_pairs(note: CorpusNote) -> frozenset[Pair]:
    pairs: set[Pair] = set()
    for claim in note.expected:
        if not claim.players:
            pairs.add((claim.topic, NONE_PLAYER))
        for player in claim.players:
            pairs.add((claim.topic, normalise_name(player)))
    return frozenset(pairs)


def _predicted_pairs(claims: Iterable[Claim], index: RosterIndex) -> frozenset[Pair]:
    pairs: set[Pair] = set()
    for claim in claims:
        if not claim.mentioned_names:
            pairs.add((claim.topic, NONE_PLAYER))
        for name in claim.mentioned_names:
            result = index.resolve(name)
            if result.status is ResolutionStatus.AUTO_RESOLVED and result.best is not None:
                pairs.add((claim.topic, normalise_name(result.best.name)))
            else:
                pairs.add((claim.topic, normalise_name(name)))
    return frozenset(pairs)


def rules_extractor(*, use_nicknames: bool = True) -> Extractor:
    """The rules extractor as the pipeline runs it: the roster's names, and the
    nicknames the club has taught (the alias keys) unless ``use_nicknames`` is off."""

    def run(note: CorpusNote) -> Sequence[Claim]:
        nicknames = tuple(note.aliases) if use_nicknames else ()
        return extract_claims(note.text, note.roster, nicknames=nicknames)

    return run


def score_corpus(
    extractor: Extractor | None = None,
    notes: Sequence[CorpusNote] | None = None,
    *,
    split: str | None = "dev",
) -> ScoreReport:
    """Micro-averaged precision, recall and F1 of ``extractor`` over the corpus."""
    extractor = extractor or rules_extractor()
    notes = list(notes) if notes is not None else load_corpus(split=split)
    report = ScoreReport()
    for note in notes:
        claims = tuple(extractor(note))
        expected = _expected_pairs(note)
        predicted = _predicted_pairs(claims, _index(note))
        report.notes.append(NoteResult(note, expected, predicted, claims))
        report.overall.add(
            len(expected & predicted), len(predicted - expected), len(expected - predicted)
        )
        for topic in TOPIC_NAMES:
            exp = {p for p in expected if p[0] == topic}
            pred = {p for p in predicted if p[0] == topic}
            report.per_topic[topic].add(len(exp & pred), len(pred - exp), len(exp - pred))
    return report


def format_report(report: ScoreReport, *, errors: bool = False) -> str:
    """The figures as a table; with ``errors``, every missed and spurious pair by note."""
    o = report.overall
    lines = [
        f"notes {len(report.notes)}  pairs expected {o.tp + o.fn}  predicted {o.tp + o.fp}",
        f"precision {o.precision:.3f}  recall {o.recall:.3f}  F1 {o.f1:.3f}",
        "",
        f"{'topic':<24}{'tp':>5}{'fp':>5}{'fn':>5}{'P':>8}{'R':>8}{'F1':>8}",
    ]
    for topic, prf in report.per_topic.items():
        if prf.tp + prf.fp + prf.fn == 0:
            continue
        lines.append(
            f"{topic:<24}{prf.tp:>5}{prf.fp:>5}{prf.fn:>5}"
            f"{prf.precision:>8.3f}{prf.recall:>8.3f}{prf.f1:>8.3f}"
        )
    if errors:
        for result in report.notes:
            if not (result.missed or result.spurious):
                continue
            lines.append("")
            lines.append(f"{result.note.id} [{result.note.roster_key}] {result.note.text}")
            for pair in sorted(result.missed):
                lines.append(f"  missed   {pair[0]:<22} {pair[1] or '-'}")
            for pair in sorted(result.spurious):
                lines.append(f"  spurious {pair[0]:<22} {pair[1] or '-'}")
            for claim in result.claims:
                lines.append(
                    f"    = {claim.topic:<22} {list(claim.mentioned_names)} "
                    f"{claim.extraction_confidence:.2f} | {claim.source_text}"
                )
    return "\n".join(lines)
