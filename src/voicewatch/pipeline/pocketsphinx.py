"""Offline speech recognition with pocketsphinx, biased toward a club's roster names.

Why: the pipeline must do its real job with no account anywhere. pocketsphinx's PyPI
wheel carries a US English acoustic model, dictionary and language model, so nothing
is downloaded at run time. (This module is ``voicewatch.pipeline.pocketsphinx``;
``import pocketsphinx`` inside it is the recogniser package itself.)

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
"""

from __future__ import annotations

import array
import random
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voicewatch.pipeline.audio import TARGET_RATE, AudioError, read_audio
from voicewatch.pipeline.pronunciation import guess_pronunciation
from voicewatch.pipeline.topics import TOPICS
from voicewatch.pipeline.transcription import (
    DEFAULT_MAX_DURATION_SECONDS,
    Transcript,
    TranscriptionError,
    hint_words,
)

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


def _pronunciations(decoder: Any, word: str) -> list[str]:
    """Every pronunciation the decoder's dictionary has for ``word`` (``word(2)``, ...)."""
    found: list[str] = []
    entry = word
    while (phones := decoder.lookup_word(entry)) is not None:
        found.append(phones)
        entry = f"{word}({len(found) + 1})"
    return found


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
