"""Turning a voice note into a transcript, offline by default.

Why: the pipeline must do its real job with no account anywhere. ``LocalTranscriber``
recognises speech with pocketsphinx, whose PyPI wheel carries a US English acoustic
model, dictionary and language model, so nothing is downloaded at run time.
``TextPassthrough`` gives text messages the same ``Transcript`` shape;
``LocalWhisperTranscriber`` (in ``whisper``) runs Whisper offline when the ``whisper``
extra is installed, and ``WhisperTranscriber`` (in ``openai_provider``) calls an API.
Every transcriber raises ``TranscriptionError`` with a machine-readable code, which
the stage stores as the event's ``error_code``.

Vocabulary biasing: a club's roster names matter most in a note, and the stock
language model either lacks them ("Okafor", "Lindqvist", "Jayden") or finds them
unlikely, so it hears "the role" for "Liam". ``transcribe(..., hints=roster_names)``
gives every hint word a strong unigram (``HINT_WEIGHT``) in a per-hint-set copy of the
language model, with a pronunciation from the dictionary or, for an unknown name,
from ``guess_pronunciation``. Measured by ``bench/bench_wer.py`` (48 notes read by
espeak-ng, 51 roster names said; corpus WER, names heard, names heard but not said):

* no biasing: WER 0.346, 12 of 51 names, 0 false;
* roster names as hints (weight 1000): WER 0.314, 36 of 51 names, 9 false. On the 12
  ``held_out`` notes, written after the tuning: 0.363 -> 0.316, names 2 -> 9 of 12.

The weight trades names heard against names invented: 300 gave 0.317 (26 heard,
2 false), 3000 gave 0.313 (39 heard, 15 false); 1000 has the best F1 on names. In the
tuning runs 10000 lost most of the gain and 30000 was worse than no hints.

The coaching vocabulary (``COACHING_WORDS``) is only added where the model lacks a
word: boosting it moved the WER by under 0.01 (a few words in 540) at weights 10-100
and made it worse at 1000, so it is not boosted.

Two front-end measures, both measured on the same corpus: a faint noise floor
(``NOISE_FLOOR``, 0.64 -> 0.35 without hints) and per-note cepstral-mean
normalisation, which also makes a transcript independent of the notes decoded before it.

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
from voicewatch.pipeline.resolution import strip_accents

#: Ten minutes: longer notes are refused (decoding time grows with length).
DEFAULT_MAX_DURATION_SECONDS = 600.0

#: The local model's name, as the cost table and the events know it.
LOCAL_MODEL = "pocketsphinx"

#: Unigram weight of a hint word (a roster name), relative to a uniform distribution
#: over the language model's vocabulary (pocketsphinx's ``ngram_model_add_word``):
#: 1000 makes a name about as likely as a common word. Tuned on the benchmark's
#: ``notes`` (weights 1 to 30000 tried), then checked on its ``held_out`` notes
#: (the figures are in the module docstring).
HINT_WEIGHT = 1000.0
#: The same for the coaching vocabulary (``COACHING_WORDS``): 1.0 adds the words the
#: model lacks at a uniform probability and boosts none (boosting did not help).
VOCABULARY_WEIGHT = 1.0

#: Standard deviation, in 16-bit sample units (about -55 dBFS), of the noise floor added
#: before decoding. Digital silence (exact zeros between words, as synthesised or
#: heavily gated audio has) gives the acoustic model frames unlike anything it was
#: trained on. Measured on the benchmark corpus without hints: no noise 0.64 WER,
#: 30 -> 0.37, 60 -> 0.35, 100 -> 0.38, 150 -> 0.43. It is inaudible under any real
#: recording's own noise, and seeded, so a transcript is reproducible.
NOISE_FLOOR = 60.0


def _coaching_words() -> tuple[str, ...]:
    """The single-word strong cues of the 15 claim topics: the trade's own vocabulary.

    Taken from ``topics`` (the claims extractor's lexicons) rather than written here,
    so the list was not chosen by looking at the benchmark's notes.
    """
    from voicewatch.pipeline.topics import TOPICS

    words = {
        cue
        for topic in TOPICS
        for cue, weight in topic.cues.items()
        if weight >= 2.0 and " " not in cue and "*" not in cue
    }
    return tuple(sorted(words))


#: Words of the coaching trade a note is likely to contain (see ``_coaching_words``).
COACHING_WORDS: tuple[str, ...] = _coaching_words()

_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "<unk>"})
_ALT_PRON = re.compile(r"\(\d+\)$")
#: Suffix of a known word's boosted twin entry in the dictionary and language model.
_TWIN = "_hint"
#: The one-word grammar search used to measure a note's cepstral mean.
_CMN_SEARCH = "cepstral-mean"
#: A pause at least this long (seconds) between words starts a new segment.
SEGMENT_PAUSE = 0.3


class TranscriptionError(Exception):
    """A note could not be transcribed; ``code`` is the machine-readable reason.

    Codes: ``file_not_found``, ``not_audio``, ``empty_audio``, ``unsupported_audio``,
    ``audio_too_long``, ``audio_too_large`` (over a provider's upload limit),
    ``recognizer_unavailable``, ``decoder_error``, ``not_text`` (a text note that is not UTF-8),
    ``corrupt_audio`` (an audio header, but a damaged or cut-off stream),
    ``model_unverified`` (a whisper model file does not match its pinned digest).
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
    posterior, Whisper's mean segment probability, 1.0 for typed text), or None when
    a provider gives no measure; ``usage`` is set when a paid provider was called.
    """

    full_text: str
    segments: list[dict[str, Any]]
    duration_seconds: float
    word_count: int
    confidence: float | None
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
    w = re.sub(r"[^a-z]", "", _lower_fold(word))
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


def _pronunciations(decoder: Any, word: str) -> list[str]:
    """Every pronunciation the decoder's dictionary has for ``word`` (``word(2)``, ...)."""
    found: list[str] = []
    entry = word
    while (phones := decoder.lookup_word(entry)) is not None:
        found.append(phones)
        entry = f"{word}({len(found) + 1})"
    return found


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


def _lower_fold(text: str) -> str:
    return strip_accents(text.lower())


def hint_words(hints: Iterable[str]) -> dict[str, str]:
    """Hint phrases to ``{token: display form}``: each word lower-cased, accents folded.

    ``"Ava O'Connell"`` gives ``{"ava": "Ava", "oconnell": "O'Connell"}``.
    """
    out: dict[str, str] = {}
    for hint in hints:
        for raw in re.split(r"[\s\-]+", hint or ""):
            display = raw.strip('.,;:!?"()[]')
            token = re.sub(r"[^a-z0-9]", "", _lower_fold(display))
            if len(token) >= 2 and not token.isdigit() and token not in out:
                out[token] = display
    return out


# --- the offline recognizer -------------------------------------------------------------


class LocalTranscriber:
    """Offline speech recognition with pocketsphinx's bundled US English model.

    One decoder is loaded on first use and reused (loading takes about 0.3 s and
    100 MB); calls are serialised by a lock, since a pocketsphinx decoder is not
    thread-safe. A vocabulary (the constructor's ``vocabulary`` plus the call's
    ``hints``) builds its own copy of the language model (about 0.2 s); the same
    hints on the next note reuse it.

    Biasing: each hint word gets a unigram of weight ``hint_weight`` (relative to a
    uniform distribution over the model's vocabulary): a word the model lacks is
    added under its own spelling, with the dictionary's pronunciation or one from
    ``guess_pronunciation``; a word it knows gets a boosted twin entry with the same
    pronunciations, so the original keeps its context probabilities. Words of
    ``vocabulary`` get ``vocabulary_weight`` the same way. ``use_hints=False``
    ignores both (the benchmark's baseline).
    """

    model = LOCAL_MODEL

    def __init__(
        self,
        *,
        max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS,
        vocabulary: Sequence[str] = COACHING_WORDS,
        hint_weight: float = HINT_WEIGHT,
        vocabulary_weight: float = VOCABULARY_WEIGHT,
        noise_floor: float = NOISE_FLOOR,
        use_hints: bool = True,
    ) -> None:
        self.max_duration_seconds = max_duration_seconds
        self.vocabulary = tuple(vocabulary)
        self.hint_weight = hint_weight
        self.vocabulary_weight = vocabulary_weight
        self.noise_floor = noise_floor
        self.use_hints = use_hints
        self._lock = threading.Lock()
        self._decoder: Any = None
        self._lm_path = ""
        self._active_key: tuple[tuple[str, float], ...] = ()
        self._active_search = ""
        self._display: dict[str, str] = {}
        self._searches = 0
        self._noise: array.array | None = None

    # -- public ---------------------------------------------------------------------------

    def transcribe(self, audio_path: Path, *, hints: Sequence[str] = ()) -> Transcript:
        """Recognise the speech in ``audio_path``; ``hints`` (roster names) bias it toward them.

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
        weighted = self._weighted_words(hints) if self.use_hints else {}
        with self._lock:
            decoder = self._get_decoder()
            try:
                self._use_vocabulary(decoder, weighted)
                self._normalise_to(decoder, raw)
                decoder.activate_search(self._active_search or None)
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
            self._decoder.add_jsgf_string(_CMN_SEARCH, "#JSGF V1.0; grammar g; public <s> = oh;")
        return self._decoder

    @staticmethod
    def _normalise_to(decoder: Any, raw: bytes) -> None:
        """Set the cepstral mean from this note itself before decoding it.

        Why: pocketsphinx starts each utterance from the mean of the previous ones, so
        a transcript depended on which notes the worker heard before (and the first
        note of a process came out worse). A pass through the front end under a
        one-word grammar (about 0.02 s; the real search would cost a full decode)
        measures this note's own mean. Measured on the benchmark corpus it also
        lowered the WER without hints from 0.356 to 0.346.
        """
        decoder.activate_search(_CMN_SEARCH)
        decoder.start_utt()
        decoder.process_raw(raw, no_search=True, full_utt=True)
        decoder.set_cmn(decoder.get_cmn(True))
        decoder.end_utt()

    def _weighted_words(self, hints: Sequence[str]) -> dict[str, tuple[str, float]]:
        """``{token: (display form, weight)}``; a hint outranks the same vocabulary word."""
        out = {t: (d, self.vocabulary_weight) for t, d in hint_words(self.vocabulary).items()}
        out.update({t: (d, self.hint_weight) for t, d in hint_words(hints).items()})
        return {t: dw for t, dw in out.items() if dw[1] > 0}

    def _use_vocabulary(self, decoder: Any, weighted: dict[str, tuple[str, float]]) -> None:
        """Activate a search whose language model is biased toward ``weighted`` words.

        The decoder's own default search serves only until the dictionary first
        grows: a search built before that would not know the new entries, so every
        later switch, even back to no hints, builds a fresh search.
        """
        key = tuple(sorted((t, w) for t, (_, w) in weighted.items()))
        if key == self._active_key:
            return
        import pocketsphinx

        lm = pocketsphinx.NGramModel(decoder.config, decoder.logmath, self._lm_path)
        log_zero = lm.prob(["<no-such-word>"])
        prons: list[tuple[str, str]] = []  # dictionary entries to add
        for token, weight in key:
            if lm.prob([token]) == log_zero:  # unknown to the model: add it as itself
                lm.add_word(token, weight)
                if decoder.lookup_word(token) is None:
                    phones = guess_pronunciation(token)
                    if phones:
                        prons.append((token, phones))
            elif weight > 1.0:  # known: a boosted twin with the same pronunciations
                twin = token + _TWIN
                lm.add_word(twin, weight)
                if decoder.lookup_word(twin) is None:
                    prons.extend(
                        (twin if n == 0 else f"{twin}({n + 1})", phones)
                        for n, phones in enumerate(_pronunciations(decoder, token))
                    )
        self._searches += 1
        name = f"vocabulary-{self._searches}"
        decoder.add_lm(name, lm)
        decoder.activate_search(name)
        for n, (entry, phones) in enumerate(prons):
            # the last entry rebuilds the active search's lexicon tree with all of them
            decoder.add_word(entry, phones, n == len(prons) - 1)
        if self._active_search:
            decoder.remove_search(self._active_search)
        self._active_key, self._active_search = key, name
        self._display = {t: d for t, (d, _) in weighted.items()}

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
            token = _ALT_PRON.sub("", seg.word).removesuffix(_TWIN)
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
