"""Steps 1 and 2 of the claims extractor: clean the text, cut it into tokens and sentences.

Every later step works on the tokens made here, and the lexicons go through the same
:func:`stem`, so a note and a cue always compare on the same keys.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from voicewatch.pipeline.resolution import strip_accents

#: Longer input is cut here: a voice note is a few hundred words, and the cut keeps the
#: cost of a pathological input bounded.
MAX_TEXT_CHARS = 100_000


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


@dataclass(slots=True)
class Tok:
    """One token of a note, with the normal forms every later step compares on."""

    text: str
    start: int
    end: int
    norm: str  # folded, apostrophes removed
    name_norm: str  # as norm, possessive removed
    stem: str
    is_word: bool
    is_cap: bool
    possessive: bool


def tokenise(text: str, offset: int = 0) -> list[Tok]:
    tokens: list[Tok] = []
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
            Tok(
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
TITLES = frozenset(
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
            if word in TITLES:
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
