"""Turning a voice note into a transcript, offline by default.

Why: the pipeline must do its real job with no account anywhere. ``LocalTranscriber``
recognises speech with pocketsphinx, whose PyPI wheel carries a US English acoustic
model, dictionary and language model, so nothing is downloaded at run time.
``TextPassthrough`` gives text messages the same ``Transcript`` shape, and
``WhisperTranscriber`` (in ``openai_provider``) does better when an API is configured.
Every transcriber raises ``TranscriptionError`` with a machine-readable code, which
the stage stores as the event's ``error_code``.

Vocabulary biasing: a club's roster names are what matter most in a note, and many
of them ("Okafor", "Lindqvist", "Jayden") are not in the recognizer's language model
at all, so it can never output them. ``transcribe(..., hints=roster_names)`` adds each
such word to the decoder: a pronunciation (the dictionary's, or one guessed from the
spelling by ``guess_pronunciation``) and a unigram in a per-hint-set copy of the
language model. Names the model already knows are left alone, because boosting them
measurably hurt (the benchmark ``bench/bench_wer.py`` prints both figures; see
``HINT_WEIGHT``).

``word_error_rate`` is here so that the tests and the benchmark score the same way.
"""

from __future__ import annotations

import array
import random
import re
import sys
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from voicewatch.pipeline.audio import TARGET_RATE, AudioError, read_audio

#: Ten minutes: longer notes are refused (decoding time grows with length).
DEFAULT_MAX_DURATION_SECONDS = 600.0

#: The local model's name, as the cost table and the events know it.
LOCAL_MODEL = "pocketsphinx"

#: Unigram weight of a hint word the language model lacks, relative to a uniform
#: distribution over the model's vocabulary (pocketsphinx's ``ngram_model_add_word``).
#: Tuned on the benchmark corpus: 1.0 helps, and higher weights start inserting names.
HINT_WEIGHT = 1.0

#: Standard deviation, in 16-bit sample units (about -55 dBFS), of the noise floor added
#: before decoding. Digital silence (exact zeros between words, as synthesised or
#: heavily gated audio has) throws off the front end's live cepstral normalisation;
#: measured on the benchmark corpus, a faint seeded noise floor cut the corpus WER
#: from 0.53 to 0.38, and it is inaudible under any real recording's own noise.
NOISE_FLOOR = 60.0

#: Words of the coaching trade a note is likely to contain; pass them with the roster
#: names as hints. Only those the language model lacks change anything.
COACHING_WORDS: tuple[str, ...] = (
    "physio", "hamstring", "ankle", "concussion", "rehab", "midfield", "midfielder",
    "striker", "winger", "defender", "goalkeeper", "keeper", "fullback", "centre",
    "tackle", "tackling", "pressing", "drills", "warm-up", "cooldown", "stamina",
    "sprint", "bleep", "fitness", "nutrition", "hydration", "captain", "squad",
    "selection", "substitute", "bench", "fixture", "tournament", "trials", "academy",
    "session", "training", "teammates", "attitude", "punctuality", "feedback",
    "offside", "corner", "penalty", "crossing", "dribbling", "passing", "first touch",
    "set pieces", "high line", "back four", "formation",
)  # fmt: skip

_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "<unk>"})
_ALT_PRON = re.compile(r"\(\d+\)$")
#: A pause at least this long (seconds) between words starts a new segment.
SEGMENT_PAUSE = 0.3


class TranscriptionError(Exception):
    """A note could not be transcribed; ``code`` is the machine-readable reason.

    Codes: ``file_not_found``, ``not_audio``, ``empty_audio``, ``unsupported_audio``,
    ``audio_too_long``, ``recognizer_unavailable``, ``decoder_error``.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_code = code  # the name the pipeline's stage errors use


@dataclass(frozen=True)
class Usage:
    """What one provider call consumed, so the caller can cost it (``costs.cost_of``)."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    audio_seconds: float = 0.0


@dataclass(frozen=True)
class Transcript:
    """A transcribed note.

    ``segments`` are ``{"start": s, "end": s, "text": str}`` in seconds from the
    start of the audio; ``confidence`` is in [0, 1] (the local recognizer's mean word
    posterior, Whisper's mean token probability, 1.0 for typed text); ``usage`` is set
    when a paid provider was called.
    """

    full_text: str
    segments: list[dict[str, Any]]
    duration_seconds: float
    word_count: int
    confidence: float
    model: str
    language: str | None = "en"
    usage: Usage | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the stored fields."""
        return {
            "full_text": self.full_text,
            "segments": [dict(s) for s in self.segments],
            "duration_seconds": self.duration_seconds,
            "word_count": self.word_count,
            "confidence": self.confidence,
            "model": self.model,
            "language": self.language,
        }


@runtime_checkable
class Transcriber(Protocol):
    """Anything that turns an audio file into a ``Transcript``.

    ``hints`` are words the note is likely to contain (roster names, coaching
    words); a transcriber may use them to bias its vocabulary or ignore them.
    """

    def transcribe(self, audio_path: Path, *, hints: Sequence[str] = ()) -> Transcript: ...


# --- word error rate --------------------------------------------------------------------

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


# --- text notes -------------------------------------------------------------------------


class TextPassthrough:
    """A text message is its own transcript: model ``text``, confidence 1.0."""

    model = "text"

    def transcribe_text(self, text: str) -> Transcript:
        """The transcript of a typed note: one segment, no duration."""
        clean = " ".join(text.split())
        segments = [{"start": 0.0, "end": 0.0, "text": clean}] if clean else []
        return Transcript(
            full_text=clean,
            segments=segments,
            duration_seconds=0.0,
            word_count=len(clean.split()),
            confidence=1.0,
            model=self.model,
            language=None,
        )

    def transcribe(self, audio_path: Path, *, hints: Sequence[str] = ()) -> Transcript:
        """Read a UTF-8 text file as a note (the ``Transcriber`` protocol for text notes)."""
        path = Path(audio_path)
        if not path.is_file():
            raise TranscriptionError(f"note file not found: {path}", "file_not_found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TranscriptionError(f"{path.name} is not UTF-8 text", "not_text") from exc
        return self.transcribe_text(text)


# --- pronunciations ---------------------------------------------------------------------

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
    w = re.sub(r"[^a-z]", "", _fold(word))
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


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in folded if not unicodedata.combining(c))


def hint_words(hints: Iterable[str]) -> dict[str, str]:
    """Hint phrases to ``{token: display form}``: each word lower-cased, accents folded.

    ``"Ava O'Connell"`` gives ``{"ava": "Ava", "oconnell": "O'Connell"}``.
    """
    out: dict[str, str] = {}
    for hint in hints:
        for raw in re.split(r"[\s\-]+", hint or ""):
            display = raw.strip('.,;:!?"()[]')
            token = re.sub(r"[^a-z0-9]", "", _fold(display))
            if len(token) >= 2 and not token.isdigit() and token not in out:
                out[token] = display
    return out


# --- the offline recognizer -------------------------------------------------------------


class LocalTranscriber:
    """Offline speech recognition with pocketsphinx's bundled US English model.

    One decoder is loaded on first use and reused (loading takes about 0.3 s and
    100 MB); calls are serialised by a lock, since a pocketsphinx decoder is not
    thread-safe. A hint set builds its own copy of the language model (0.1 s) with
    the roster words added; the same hints on the next note reuse it.

    ``max_duration_seconds`` bounds the audio accepted; ``hint_weight`` and
    ``noise_floor`` are the tuned defaults above, exposed for the benchmark.
    """

    model = LOCAL_MODEL

    def __init__(
        self,
        *,
        max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS,
        hint_weight: float = HINT_WEIGHT,
        noise_floor: float = NOISE_FLOOR,
        use_hints: bool = True,
        boost_known: float = 0.0,
    ) -> None:
        self.boost_known = boost_known
        self.max_duration_seconds = max_duration_seconds
        self.hint_weight = hint_weight
        self.noise_floor = noise_floor
        self.use_hints = use_hints
        self._lock = threading.Lock()
        self._decoder: Any = None
        self._lm_path = ""
        self._active_key: tuple[str, ...] = ()
        self._active_search = ""
        self._display: dict[str, str] = {}
        self._searches = 0
        self._noise: array.array | None = None

    # -- public ---------------------------------------------------------------------------

    def transcribe(self, audio_path: Path, *, hints: Sequence[str] = ()) -> Transcript:
        """Recognise the speech in ``audio_path``; ``hints`` bias the vocabulary toward them.

        Raises ``TranscriptionError`` for a missing file, a file that is not audio,
        audio longer than ``max_duration_seconds``, or a recognizer failure.
        """
        try:
            pcm = read_audio(
                Path(audio_path), rate=TARGET_RATE, max_seconds=self.max_duration_seconds
            )
        except AudioError as exc:
            raise TranscriptionError(str(exc), exc.code) from exc
        raw = self._with_noise_floor(pcm.samples)
        with self._lock:
            decoder = self._get_decoder()
            try:
                self._use_vocabulary(decoder, hints if self.use_hints else ())
                decoder.start_utt()
                decoder.process_raw(raw, full_utt=True)
                decoder.end_utt()
                words = self._words(decoder)
            except RuntimeError as exc:
                raise TranscriptionError(f"pocketsphinx failed: {exc}", "decoder_error") from exc
        return self._transcript(words, pcm.duration_seconds)

    # -- decoder --------------------------------------------------------------------------

    def _get_decoder(self) -> Any:
        if self._decoder is None:
            try:
                import pocketsphinx
            except ImportError as exc:  # pragma: no cover - a dependency of the package
                raise TranscriptionError(
                    "pocketsphinx is not installed: pip install pocketsphinx",
                    "recognizer_unavailable",
                ) from exc
            # mmap off: a memory-mapped language model is read-only, and hints add words.
            self._decoder = pocketsphinx.Decoder(
                samprate=TARGET_RATE, bestpath=True, mmap=False, loglevel="FATAL"
            )
            self._lm_path = str(self._decoder.config["lm"])
        return self._decoder

    def _use_vocabulary(self, decoder: Any, hints: Sequence[str]) -> None:
        """Activate a search whose language model knows the hint words.

        A copy of the model gets a unigram for each hint word it lacks, and the
        dictionary a pronunciation for each word it lacks; words the model already
        has are left alone. The decoder's own default search is used only until the
        dictionary first grows: a search built before that would not know the new
        entries, so later switches, even back to no hints, build a fresh search.
        """
        words = hint_words(hints)
        key = tuple(sorted(words))
        if key == self._active_key:
            return
        import pocketsphinx

        lm = pocketsphinx.NGramModel(decoder.config, decoder.logmath, self._lm_path)
        log_zero = lm.prob(["<no-such-word>"])
        added = [t for t in key if lm.prob([t]) == log_zero]
        for token in added:
            lm.add_word(token, self.hint_weight)
        boosted = []
        if self.boost_known > 0:
            for token in key:
                if token not in added:
                    lm.add_word(token + "_", self.boost_known)
                    boosted.append(token)
        self._searches += 1
        name = f"vocabulary-{self._searches}"
        decoder.add_lm(name, lm)
        decoder.activate_search(name)
        prons = [(t, guess_pronunciation(t)) for t in added if decoder.lookup_word(t) is None]
        prons = [(t, phones) for t, phones in prons if phones]
        for token in boosted:
            k = 1
            variant = token
            while (ph := decoder.lookup_word(variant)) is not None:
                prons.append((token + "_" + (f"({k})" if k > 1 else ""), ph))
                k += 1
                variant = f"{token}({k})"
        for n, (token, phones) in enumerate(prons):
            # the last word rebuilds the active search's lexicon tree with all of them
            decoder.add_word(token, phones, n == len(prons) - 1)
        if self._active_search:
            decoder.remove_search(self._active_search)
        self._active_key, self._active_search = key, name
        self._display = {t: words[t] for t in key}

    def _with_noise_floor(self, samples: array.array) -> bytes:
        """Add a faint, seeded Gaussian noise floor (see ``NOISE_FLOOR``); returns raw bytes."""
        if self.noise_floor <= 0:
            out = samples
        else:
            if self._noise is None:
                rnd = random.Random(20240601)
                self._noise = array.array(
                    "h", [round(rnd.gauss(0.0, self.noise_floor)) for _ in range(TARGET_RATE * 2)]
                )
            noise = self._noise
            reps = len(samples) // len(noise) + 1
            tiled = noise * reps if reps > 1 else noise
            out = array.array(
                "h",
                [max(-32768, min(32767, s + n)) for s, n in zip(samples, tiled, strict=False)],
            )
        if sys.byteorder == "big":  # pragma: no cover - pocketsphinx wants little-endian
            out = array.array("h", out)
            out.byteswap()
        return out.tobytes()

    def _words(self, decoder: Any) -> list[tuple[str, float, float, float]]:
        """(word, start s, end s, posterior) per recognised word; ``("", ...)`` marks a pause."""
        frate = float(decoder.config["frate"])
        words: list[tuple[str, float, float, float]] = []
        for seg in decoder.seg():
            start, end = seg.start_frame / frate, (seg.end_frame + 1) / frate
            if seg.word in _FILLERS or seg.word.startswith("++"):
                if seg.word == "<sil>" and end - start >= SEGMENT_PAUSE:
                    words.append(("", start, end, 1.0))
                continue
            token = _ALT_PRON.sub("", seg.word).rstrip("_")
            words.append(
                (self._display.get(token, token), start, end, min(max(seg.prob, 0.0), 1.0))
            )
        return words

    def _transcript(
        self, words: list[tuple[str, float, float, float]], duration: float
    ) -> Transcript:
        segments: list[dict[str, Any]] = []
        current: list[tuple[str, float, float, float]] = []
        for item in [*words, ("", 0.0, 0.0, 1.0)]:
            if item[0]:
                current.append(item)
            elif current:
                segments.append(
                    {
                        "start": round(current[0][1], 2),
                        "end": round(current[-1][2], 2),
                        "text": " ".join(w for w, *_ in current),
                    }
                )
                current = []
        spoken = [w for w in words if w[0]]
        confidence = sum(w[3] for w in spoken) / len(spoken) if spoken else 0.0
        return Transcript(
            full_text=" ".join(s["text"] for s in segments),
            segments=segments,
            duration_seconds=round(duration, 3),
            word_count=len(spoken),
            confidence=round(confidence, 4),
            model=self.model,
            language="en",
        )
