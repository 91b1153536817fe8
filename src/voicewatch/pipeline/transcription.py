"""What a transcript is, and the one transcriber that needs no recogniser.

Why a module of its own: the pipeline's stages, the providers and every recogniser
(``pocketsphinx.LocalTranscriber`` offline by default, ``whisper.LocalWhisperTranscriber``
when the ``whisper`` extra is installed, ``openai_provider.whisper.WhisperTranscriber``
over an API) meet on these types and on nothing else. Every transcriber raises
``TranscriptionError`` with a machine-readable code, which the stage stores as the
event's ``error_code``; ``TextPassthrough`` gives text messages the same ``Transcript``
shape. ``hint_words`` turns hint phrases (roster names) into the tokens the
recognisers bias toward, so they agree on what a hint word is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from voicewatch.pipeline.resolution import strip_accents

#: Ten minutes: longer notes are refused (decoding time grows with length).
DEFAULT_MAX_DURATION_SECONDS = 600.0


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


# --- hints ------------------------------------------------------------------------------


def hint_words(hints: Iterable[str]) -> dict[str, str]:
    """Hint phrases to ``{token: display form}``: each word lower-cased, accents folded.

    ``"Ava O'Connell"`` gives ``{"ava": "Ava", "oconnell": "O'Connell"}``.
    """
    out: dict[str, str] = {}
    for hint in hints:
        for raw in re.split(r"[\s\-]+", hint or ""):
            display = raw.strip('.,;:!?"()[]')
            token = re.sub(r"[^a-z0-9]", "", strip_accents(display.lower()))
            if len(token) >= 2 and not token.isdigit() and token not in out:
                out[token] = display
    return out
