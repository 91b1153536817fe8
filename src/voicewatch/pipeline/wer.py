"""The word error rate: one scoring of transcripts for the tests and the benchmark.

Why here and not in a test helper: ``tests/test_transcription.py``, ``tests/test_whisper.py``
and ``bench/bench_wer.py`` must score the same way, or a figure in the README and a
bound in a test would measure different things.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_WORD_RE = re.compile(r"[a-z0-9]+")


def normalize_words(text: str) -> list[str]:
    """Lower-case words with punctuation stripped: the unit of the word error rate.

    Apostrophes join (``Ava's`` -> ``avas``, ``don't`` -> ``dont``); hyphens and other
    punctuation split (``warm-up`` -> ``warm up``); accents fold (``José`` -> ``jose``).
    """
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = folded.replace("'", "").replace("\u2019", "")
    return _WORD_RE.findall(folded)


def word_edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance over words (substitutions, deletions, insertions each cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) for one utterance; sum both over a corpus."""
    r, h = normalize_words(ref), normalize_words(hyp)
    return word_edit_distance(r, h), len(r)


def word_error_rate(ref: str, hyp: str) -> float:
    """Word-level edit distance over the number of reference words, after normalisation.

    An empty reference scores 0.0 against an empty hypothesis and 1.0 otherwise.
    For a corpus, sum ``word_errors`` over the utterances instead of averaging.
    """
    edits, n = word_errors(ref, hyp)
    if n == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / n
