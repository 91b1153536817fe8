"""A pronunciation for a word the recogniser's dictionary lacks, from spelling rules.

Why: a roster name the dictionary does not know ("Okafor", "Lindqvist") cannot be
heard at all; an approximate pronunciation lets ``pocketsphinx.LocalTranscriber``
add it to its vocabulary. The phones are ARPABET, the dictionary's alphabet.
"""

from __future__ import annotations

import re

from voicewatch.pipeline.resolution import strip_accents

_VOWELS = frozenset("aeiou")
#: Multi-letter spellings, longest first, and their ARPABET phones.
_GRAPHEMES: tuple[tuple[str, str], ...] = (
    ("tion", "SH AH N"), ("sion", "ZH AH N"),
    ("tch", "CH"), ("sch", "SH"), ("ough", "OW"), ("igh", "AY"),
    ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("ck", "K"), ("ng", "NG"),
    ("qu", "K W"), ("wh", "W"), ("cz", "CH"), ("sz", "SH"), ("rz", "ZH"), ("zh", "ZH"),
    ("kh", "K"), ("dh", "D"), ("dj", "JH"), ("gh", "G"),
    ("ee", "IY"), ("ea", "IY"), ("ie", "IY"), ("ei", "EY"), ("ey", "EY"), ("ai", "EY"),
    ("ay", "EY"), ("oa", "OW"), ("oo", "UW"), ("ou", "AW"), ("ow", "OW"), ("oi", "OY"),
    ("oy", "OY"), ("au", "AO"), ("aw", "AO"), ("eu", "Y UW"), ("ue", "UW"),
    ("ar", "AA R"), ("er", "ER"), ("ir", "ER"), ("ur", "ER"), ("or", "AO R"),
)  # fmt: skip
_CONSONANTS: dict[str, str] = {
    "b": "B", "d": "D", "f": "F", "g": "G", "h": "HH", "j": "JH", "k": "K", "l": "L",
    "m": "M", "n": "N", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T", "v": "V",
    "w": "W", "x": "K S", "z": "Z",
}  # fmt: skip
_SHORT = {"a": "AE", "e": "EH", "i": "IH", "o": "AA", "u": "AH"}
_OPEN = {"a": "AA", "e": "EH", "i": "IY", "o": "OW", "u": "UW"}
_LONG = {"a": "EY", "e": "IY", "i": "AY", "o": "OW", "u": "UW"}
_FINAL = {"a": "AH", "e": "IY", "i": "IY", "o": "OW", "u": "UW"}


def guess_pronunciation(word: str) -> str:
    """ARPABET phones for a word the dictionary lacks, from simple English spelling rules.

    Why rules and not a trained model: roster names are short and mostly regular,
    the recognizer tolerates an approximate pronunciation far better than a missing
    word, and the rules need no data file. Handles digraphs (``ch``, ``ph``, ``qu``,
    ``sz``), vowel teams, r-coloured vowels, a silent final ``e`` that lengthens the
    vowel before it (``Blake``), open syllables (``Okafor``) and doubled consonants.
    """
    w = re.sub(r"[^a-z]", "", strip_accents(word.lower()))
    if not w:
        return ""
    long_at = -1
    if len(w) > 3 and re.search(r"[aeiou][^aeiouy]e$", w):
        long_at = len(w) - 3
        w = w[:-1]
    phones: list[str] = []
    i = 0
    while i < len(w):
        if i > 0 and w[i] == w[i - 1] and w[i] not in _VOWELS:
            i += 1  # a doubled consonant is said once
            continue
        matched = _grapheme_at(w, i)
        if matched is not None:
            spelling, ph = matched
            phones.extend(ph.split())
            i += len(spelling)
            continue
        phones.extend(_letter_phones(w, i, long_at))
        i += 1
    return " ".join(phones)


def _grapheme_at(w: str, i: int) -> tuple[str, str] | None:
    """The multi-letter spelling starting at ``w[i]`` and its phones, if any."""
    for spelling, ph in _GRAPHEMES:
        if not w.startswith(spelling, i):
            continue
        if spelling in ("ar", "er", "ir", "ur", "or") and w[i + 2 : i + 3] in _VOWELS:
            continue  # the "r" starts the next syllable: "Zara", "Ferris"
        if spelling == "gh" and i > 0:
            return spelling, ""  # silent after a vowel: "Hugh", "Leigh"
        return spelling, ph
    return None


def _letter_phones(w: str, i: int, long_at: int) -> list[str]:
    """Phones of the single letter ``w[i]``, from its neighbours."""
    c, nxt = w[i], w[i + 1 : i + 2]
    if c in _VOWELS:
        if i == long_at:
            return [_LONG[c]]
        if i == len(w) - 1:
            return [_FINAL[c]]
        return [_OPEN[c] if _open_syllable(w, i) else _SHORT[c]]
    if c == "y":
        if i == 0 and nxt in _VOWELS and nxt:
            return ["Y"]
        return ["IY"] if i == len(w) - 1 else ["IH"]
    if c == "c":
        return ["S" if nxt in ("e", "i", "y") and nxt else "K"]
    if c == "g":
        return ["JH" if nxt in ("e", "y") and nxt else "G"]
    if c == "h" and i > 0 and w[i - 1] in _VOWELS and (not nxt or nxt not in _VOWELS):
        return []  # silent: "Mensah", "Noah"
    return _CONSONANTS.get(c, "").split()


def _open_syllable(w: str, i: int) -> bool:
    """A vowel followed by exactly one consonant and then a vowel is usually long-ish."""
    return (
        i + 2 < len(w) and w[i + 1] not in _VOWELS and w[i + 1] not in "xy" and w[i + 2] in _VOWELS
    )
