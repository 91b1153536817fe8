"""Offline Whisper: faster-whisper (CTranslate2, CPU int8) on verified local weights.

Why: pocketsphinx's WER on a coach's real note (wind, WhatsApp's 16 kb/s Opus) is far
worse than Whisper's small models, and a coach's data must not leave the machine.
``LocalWhisperTranscriber`` runs Whisper on this machine from the optional extra
(``pip install 'voicewatch[whisper]'``); the weights come only from a local directory
that ``model_files.verify_model_dir`` has checked file by file, and are loaded from that
path (faster-whisper downloads only when given a model *name*, never a directory).

Roster names as hints: their first names go in Whisper's initial prompt, as if said just
before the note, which makes the decoder spell "Jayden" right, but also lets it put a
roster name where the audio has none. Only first names, because a prompt that lists full
names ("Oscar Dunne, Jayden Patel, ...") made the decoder write a list: a surname after
each first name the coach said, or the prompt's names over and over. The guard:
faster-whisper's word probabilities come from a second, prompt-free alignment pass over
the audio, so they say how well the audio *alone* supports each word. A roster-name word
below ``NAME_MIN_PROBABILITY`` that the prompt put there is not kept: the note is
decoded again without the prompt and that word's time span takes the prompt-free words
(``_guard_names``).

Short notes: Whisper's encoder is built for 30-second windows and faster-whisper pads a
3-second note with 27 s of zeros, so most of a short note's cost is encoding silence.
CTranslate2's encoder takes a shorter input, so ``trim_padding`` cuts the zero padding
to ``PAD_KEEP_FRAMES`` (figures in the README, "Offline whisper").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicewatch.pipeline.audio import TARGET_RATE, AudioError, read_audio
from voicewatch.pipeline.model_files import ModelRefused, PinnedModel, verify_model_dir
from voicewatch.pipeline.transcription import (
    DEFAULT_MAX_DURATION_SECONDS,
    Transcript,
    TranscriptionError,
    hint_words,
)

#: A roster-name word the prompt suggested is kept only when the audio alone gives it at
#: least this probability (faster-whisper's prompt-free alignment pass). Chosen on the
#: benchmark's tuning slices only: the smallest that dropped every invented name there
#: (README, "Word error rate").
NAME_MIN_PROBABILITY = 0.01
#: Frames (10 ms each) of zero padding kept after a short note's last frame.
PAD_KEEP_FRAMES = 100
#: At most this many prompt-free words replace one guarded name word.
MAX_REPLACEMENT_WORDS = 3
#: A word repeated more often than this in a row is the decoder looping.
MAX_REPEATS = 3
#: A run of 2 to this many words said twice in a row is the decoder looping on a phrase
#: ("you know, you know, ...", a whole sentence again): the repeats are dropped.
MAX_LOOP_WORDS = 12
#: Beam width: 5 is faster-whisper's default and Whisper's paper's setting (3 and 8 did
#: no better on the tuning slices).
BEAM_SIZE = 5
#: Decoding options chosen on the tuning slices (README). One segment per 30-s window
#: (no timestamp tokens): with them the decoder ended a segment early and decoded the
#: rest of the note again, writing a sentence twice. A repetition penalty: with noise
#: the beam otherwise settles into a loop.
DECODE_OPTIONS: dict[str, Any] = {"without_timestamps": True, "repetition_penalty": 1.2}


def whisper_available() -> bool:
    """Whether the ``whisper`` extra (faster-whisper) is importable."""
    import importlib.util

    return importlib.util.find_spec("faster_whisper") is not None


@dataclass(frozen=True)
class _Word:
    text: str
    start: float
    end: float
    probability: float


class LocalWhisperTranscriber:
    """Whisper on this machine; ``model`` is ``faster-whisper-<name>`` once verified.

    The model is verified and loaded on first use (tiny.en: 0.2 s of hashing, about
    0.5 s of loading, 270 MB resident) and reused; calls are serialised by a lock, as
    one CTranslate2 model on 2 cores gains nothing from parallel calls.
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        threads: int = 2,
        beam_size: int = BEAM_SIZE,
        use_hints: bool = True,
        name_min_probability: float = NAME_MIN_PROBABILITY,
        trim_padding: bool = True,
        max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.threads = threads
        self.beam_size = beam_size
        self.use_hints = use_hints
        self.name_min_probability = name_min_probability
        self.trim_padding = trim_padding
        self.max_duration_seconds = max_duration_seconds
        self.pinned: PinnedModel | None = None
        self.guarded_names = 0  # names the guard took out (for the benchmark)
        #: (token, prompt-free probability) of each roster-name word of the last prompted
        #: decode, before the guard: the benchmark tunes ``name_min_probability`` on it
        self.last_name_words: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def model(self) -> str:
        """The model's name as events and costs record it."""
        name = self.pinned.name if self.pinned else "unverified"
        return f"faster-whisper-{name}"

    def load(self) -> None:
        """Verify the weights (``ModelRefused`` if any file is off) and load them once."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            import faster_whisper
        except ImportError as exc:
            raise TranscriptionError(
                "faster-whisper is not installed: pip install 'voicewatch[whisper]'",
                "recognizer_unavailable",
            ) from exc
        try:
            self.pinned = verify_model_dir(self.model_dir)
        except ModelRefused as exc:
            raise TranscriptionError(exc.message, exc.error_code) from exc
        self._model = _trimming_model(faster_whisper.WhisperModel)(
            str(self.model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=self.threads,
            local_files_only=True,
        )
        self._model.trim_padding = self.trim_padding
        return self._model

    def transcribe(self, audio_path: Path, *, hints: Sequence[str] = ()) -> Transcript:
        """Transcribe ``audio_path``; ``hints`` (roster names) go in the initial prompt.

        Raises ``TranscriptionError`` (the audio's code, ``model_unverified`` through
        ``ModelRefused``, or ``decoder_error``).
        """
        try:
            pcm = read_audio(
                Path(audio_path), rate=TARGET_RATE, max_seconds=self.max_duration_seconds
            )
        except AudioError as exc:
            raise TranscriptionError(str(exc), exc.code) from exc
        import numpy as np

        samples = np.frombuffer(pcm.samples.tobytes(), dtype=np.int16).astype(np.float32)
        samples /= 32768.0
        names = hint_words(hints) if self.use_hints else {}
        prompt = first_name_prompt(hints) if names else None
        with self._lock:
            model = self._load_locked()
            try:
                words, segments, confidence = self._decode(model, samples, prompt)
                if names:
                    words = self._guard_names(model, samples, words, names)
            except (RuntimeError, ValueError) as exc:
                raise TranscriptionError(f"faster-whisper failed: {exc}", "decoder_error") from exc
        text = _join(words)
        return Transcript(
            full_text=text,
            segments=_resegment(words, segments),
            duration_seconds=round(pcm.duration_seconds, 3),
            word_count=len(words),
            confidence=confidence,
            model=self.model,
            language="en",
        )

    def _decode(
        self, model: Any, samples: Any, prompt: str | None
    ) -> tuple[list[_Word], list[dict[str, Any]], float | None]:
        """One decode: (words, segments, mean segment probability)."""
        import math

        raw, _info = model.transcribe(
            samples,
            language="en",
            beam_size=self.beam_size,
            initial_prompt=prompt,
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,
            **DECODE_OPTIONS,
        )
        words: list[_Word] = []
        segments: list[dict[str, Any]] = []
        probs: list[float] = []
        for seg in raw:
            text = seg.text.strip()
            if not text:
                continue
            segments.append({"start": round(seg.start, 2), "end": round(seg.end, 2), "text": text})
            probs.append(math.exp(seg.avg_logprob))
            words.extend(
                _Word(w.word, float(w.start), float(w.end), float(w.probability))
                for w in seg.words or ()
                if w.word.strip()
            )
        confidence = round(sum(probs) / len(probs), 4) if probs else 0.0
        return _without_loops(words, len(samples) / TARGET_RATE), segments, confidence

    def _guard_names(
        self, model: Any, samples: Any, words: list[_Word], names: dict[str, str]
    ) -> list[_Word]:
        """Replace roster-name words the audio does not support with a prompt-free decode.

        A word is suspect when its token is a hint and its prompt-free probability is
        under ``name_min_probability``. Only then is the note decoded a second time,
        without the prompt; each suspect word's span takes the prompt-free words whose
        midpoint falls inside it (none, or more than ``MAX_REPLACEMENT_WORDS``: the word
        is dropped).
        """
        self.last_name_words = [
            (_token(w.text), w.probability) for w in words if _token(w.text) in names
        ]
        suspect = [
            i
            for i, w in enumerate(words)
            if _token(w.text) in names and w.probability < self.name_min_probability
        ]
        if not suspect:
            return words
        plain, _, _ = self._decode(model, samples, None)
        out: list[_Word] = []
        used: set[int] = set()
        for i, w in enumerate(words):
            if i not in suspect:
                out.append(w)
                continue
            self.guarded_names += 1
            inside = [
                j
                for j, p in enumerate(plain)
                if j not in used and w.start <= (p.start + p.end) / 2 <= w.end
            ]
            # a name is a word or two: more prompt-free words in its span is the
            # prompt-free decode looping (Whisper's repetition), so the name is just dropped
            if len(inside) <= MAX_REPLACEMENT_WORDS:
                used.update(inside)
                out.extend(plain[j] for j in inside)
        return out


def first_name_prompt(hints: Sequence[str]) -> str:
    """The initial prompt for roster ``hints``: each name's first word, once, in order.

    ``["Liam Carter", "Maya Patel"]`` gives ``"Liam, Maya."``.
    """
    firsts: list[str] = []
    for hint in hints:
        parts = hint.split()
        if parts and parts[0] not in firsts:
            firsts.append(parts[0])
    return ", ".join(firsts) + "."


def _without_loops(words: list[_Word], duration: float) -> list[_Word]:
    """Drop Whisper's hallucinations that the benchmark met.

    Words that start after the note has ended (decoded from the padding: "end end end
    ...", "Thank you for watching"); a word said more than ``MAX_REPEATS`` times in a
    row (the decoder looping: "if if if ..."), of which ``MAX_REPEATS`` are kept; and a
    phrase of 2 to ``MAX_LOOP_WORDS`` words said again straight after itself, of which
    one is kept (``_without_phrase_loops``).
    """
    out: list[_Word] = []
    run = 0
    for w in words:
        if w.start >= duration:
            continue
        same = bool(out) and _token(out[-1].text) == _token(w.text) != ""
        run = run + 1 if same else 1
        if run <= MAX_REPEATS:
            out.append(w)
    return _without_phrase_loops(out)


def _without_phrase_loops(words: list[_Word]) -> list[_Word]:
    """``words`` with each immediate repeat of a 2-to-``MAX_LOOP_WORDS``-word phrase cut.

    Shortest phrases first, one cut at a time, until none is left: "you know, you know,
    you know" keeps one "you know"; a sentence decoded twice keeps one copy.
    """
    kept = list(words)
    tokens = [_token(w.text) for w in kept]
    cut = True
    while cut:
        cut = False
        for n in range(2, MAX_LOOP_WORDS + 1):
            for i in range(len(tokens) - 2 * n + 1):
                phrase = tokens[i : i + n]
                if any(phrase) and tokens[i + n : i + 2 * n] == phrase:
                    end = i + n
                    while tokens[end : end + n] == phrase:
                        end += n
                    del kept[i + n : end], tokens[i + n : end]
                    cut = True
                    break
            if cut:
                break
    return kept


def _join(words: list[_Word]) -> str:
    """The words as text: each carries its own leading space ("' O", "'Connell")."""
    return " ".join("".join(w.text for w in words).split())


def _token(word: str) -> str:
    """A word as ``hint_words`` keys it ("O'Connell," -> "oconnell")."""
    found = hint_words([word.replace("'s", "") if word.lower().endswith("'s") else word])
    return next(iter(found), "")


def _resegment(words: list[_Word], segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Segments rebuilt from the (guarded) words, keeping the decoder's segment spans."""
    out: list[dict[str, Any]] = []
    for seg in segments:
        inside = [w.text for w in words if seg["start"] <= (w.start + w.end) / 2 <= seg["end"]]
        if inside:
            out.append({"start": seg["start"], "end": seg["end"], "text": "".join(inside).strip()})
    return out


def _trimming_model(base: type) -> type:
    """``WhisperModel`` whose encoder skips the zero padding after a short note.

    faster-whisper pads every window to 3000 frames with zeros (``pad_or_trim``); real
    log-mel frames are never all zero. Keeping ``PAD_KEEP_FRAMES`` of the padding
    leaves the decoder a little silence to end on.
    """

    class TrimmingWhisperModel(base):  # type: ignore[misc, valid-type]
        trim_padding = True

        def encode(self, features: Any) -> Any:
            if self.trim_padding and features.ndim >= 2:
                import numpy as np

                columns = np.flatnonzero(np.abs(features).reshape(-1, features.shape[-1]).sum(0))
                keep = (int(columns[-1]) + 1 if columns.size else 0) + PAD_KEEP_FRAMES
                if keep < features.shape[-1]:
                    features = np.ascontiguousarray(features[..., :keep])
            return super().encode(features)

    return TrimmingWhisperModel
