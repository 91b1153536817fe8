"""Word error rate of the offline recognizer on synthesised coach notes, with and without hints.

Why: the local transcriber is only worth shipping if we know how good it is, and
its vocabulary biasing only if it measurably helps. This reads every note of
``voicewatch/pipeline/wer_corpus/coach_notes.json`` aloud with espeak-ng into a
temporary folder, transcribes each with ``LocalTranscriber`` twice (no biasing;
the roster as hints plus the coaching vocabulary), and prints per corpus:

* corpus WER: word edits summed over notes / reference words summed over notes,
  after lower-casing and stripping punctuation (``transcription.word_error_rate``);
* roster names heard (a name of the note found in the transcript) and false names
  (a roster name in the transcript the coach did not say);
* the average real-time factor (decoding time / audio duration).

The ``notes`` set is the one the hint weights were tuned on; ``held_out`` (another
roster) was written after tuning and only measured.

    .venv/bin/python bench/bench_wer.py [--voice en-us+klatt] [--limit N] [--verbose]

Needs Debian's espeak-ng; takes about 1.5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from voicewatch.pipeline import audio
from voicewatch.pipeline.transcription import (
    LocalTranscriber,
    normalize_words,
    word_errors,
)


@dataclass
class Score:
    """Totals of one corpus under one setting."""

    edits: int = 0
    ref_words: int = 0
    names_said: int = 0
    names_heard: int = 0
    false_names: int = 0
    decode_seconds: float = 0.0
    audio_seconds: float = 0.0
    examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.edits / self.ref_words if self.ref_words else 0.0

    @property
    def rtf(self) -> float:
        return self.decode_seconds / self.audio_seconds if self.audio_seconds else 0.0


def load_corpus() -> dict[str, Any]:
    """The benchmark corpus shipped with the package."""
    ref = resources.files("voicewatch.pipeline").joinpath("wer_corpus/coach_notes.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def name_tokens(text: str) -> list[str]:
    """Normalised words with a possessive dropped, so "Ava's" counts as the name "ava"."""
    return normalize_words(text.replace("'s ", " ").replace("\u2019s ", " "))


def score_note(
    score: Score, transcriber: LocalTranscriber, wav: Path, ref: str, roster: list[str]
) -> None:
    """Transcribe one note and add its errors to ``score``."""
    names = {w for person in roster for w in normalize_words(person)}
    start = time.perf_counter()
    transcript = transcriber.transcribe(wav, hints=roster)
    score.decode_seconds += time.perf_counter() - start
    score.audio_seconds += transcript.duration_seconds
    edits, n = word_errors(ref, transcript.full_text)
    score.edits += edits
    score.ref_words += n
    said = Counter(w for w in name_tokens(ref) if w in names)
    heard = Counter(w for w in name_tokens(transcript.full_text) if w in names)
    score.names_said += sum(said.values())
    score.names_heard += sum((said & heard).values())
    score.false_names += sum((heard - said).values())
    score.examples.append((ref, transcript.full_text))


def run(voice: str, speed: int, limit: int | None, verbose: bool) -> int:
    if not audio.espeak_available():
        print("bench_wer: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    corpus = load_corpus()
    sets = [
        ("notes (tuning)", corpus["notes"], corpus["roster"]),
        ("held_out", corpus["held_out"], corpus["held_out_roster"]),
    ]
    plain = LocalTranscriber(use_hints=False)
    biased = LocalTranscriber()
    began = time.perf_counter()
    totals = {"no hints": Score(), "hints": Score()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_wer_") as tmp:
        for label, notes, roster in sets:
            notes = list(notes)[:limit] if limit else list(notes)
            scores = {"no hints": Score(), "hints": Score()}
            for i, ref in enumerate(notes):
                wav = audio.synthesize(
                    ref, Path(tmp) / f"{label[:5]}_{i}.wav", voice=voice, speed=speed
                )
                score_note(scores["no hints"], plain, wav, ref, roster)
                score_note(scores["hints"], biased, wav, ref, roster)
            for setting, score in scores.items():
                rows.append((label, len(notes), setting, score))
                total = totals[setting]
                for attr in (
                    "edits",
                    "ref_words",
                    "names_said",
                    "names_heard",
                    "false_names",
                    "decode_seconds",
                    "audio_seconds",
                ):
                    setattr(total, attr, getattr(total, attr) + getattr(score, attr))
                total.examples.extend(score.examples)
    n_all = sum(r[1] for r in rows) // 2
    for setting, score in totals.items():
        rows.append(("all", n_all, setting, score))

    print(f"voice {voice}, {speed} wpm; recognizer pocketsphinx (bundled en-us model)")
    print(
        f"{'corpus':<16}{'notes':>6}  {'setting':<9}{'WER':>7}{'names heard':>13}"
        f"{'false names':>13}{'RTF':>7}"
    )
    for label, n, setting, s in rows:
        print(
            f"{label:<16}{n:>6}  {setting:<9}{s.wer:>7.3f}"
            f"{f'{s.names_heard}/{s.names_said}':>13}{s.false_names:>13}{s.rtf:>7.3f}"
        )
    if verbose:
        for (ref, plain_hyp), (_, hint_hyp) in zip(
            totals["no hints"].examples, totals["hints"].examples, strict=True
        ):
            print(f"\nREF   {ref}\nPLAIN {plain_hyp}\nHINTS {hint_hyp}")
    print(f"total time {time.perf_counter() - began:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voice", default=audio.DEFAULT_VOICE, help="espeak-ng voice")
    parser.add_argument("--speed", type=int, default=audio.DEFAULT_SPEED, help="words a minute")
    parser.add_argument("--limit", type=int, default=None, help="first N notes of each corpus")
    parser.add_argument("--verbose", action="store_true", help="print every transcript")
    args = parser.parse_args(argv)
    return run(args.voice, args.speed, args.limit, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
