"""Whisper transcription through the OpenAI client (``audio.transcriptions.create``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voicewatch.pipeline.audio import AudioError, inspect_audio
from voicewatch.pipeline.openai_provider.client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    as_dict,
    invalid,
    make_client,
    map_error,
    number,
)
from voicewatch.pipeline.transcription import (
    DEFAULT_MAX_DURATION_SECONDS,
    Transcript,
    TranscriptionError,
    Usage,
)

DEFAULT_TRANSCRIPTION_MODEL = "whisper-1"

#: Whisper reads at most 224 tokens of prompt; names beyond this many characters are dropped.
MAX_PROMPT_CHARS = 800

#: Whisper's upload limit.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024


class WhisperTranscriber:
    """Transcription with Whisper (``audio.transcriptions.create``, ``verbose_json``).

    ``hints`` become Whisper's ``prompt`` ("Players: Liam Carter, ..."), which is how
    Whisper is steered toward spellings. The file is checked locally first (exists,
    is audio, not longer than ``max_duration_seconds``) so a bad upload costs nothing.
    Confidence is the duration-weighted mean of ``exp(avg_logprob)`` over segments,
    or None when the server gives no log-probabilities.
    """

    def __init__(
        self,
        *,
        api_key: str = "",
        base_url: str | None = None,
        model: str = DEFAULT_TRANSCRIPTION_MODEL,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        language: str | None = "en",
        max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS,
        client: Any = None,
    ) -> None:
        self.model = model
        self.language = language
        self.max_duration_seconds = max_duration_seconds
        self.client = client or make_client(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    def transcribe(self, audio_path: Path, *, hints: Sequence[str] = ()) -> Transcript:
        """Upload ``audio_path`` and return its transcript, with ``usage`` set.

        Raises ``TranscriptionError`` for a local problem with the file and
        ``ProviderError`` for a failed call or an unusable reply.
        """
        path = Path(audio_path)
        try:
            _fmt, local_seconds = inspect_audio(path, max_seconds=self.max_duration_seconds)
        except AudioError as exc:
            raise TranscriptionError(str(exc), exc.code) from exc
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise TranscriptionError(
                f"{path.name} is over the provider's 25 MB upload limit", "audio_too_large"
            )
        params: dict[str, Any] = {"model": self.model, "response_format": "verbose_json"}
        prompt = hint_prompt(hints)
        if prompt:
            params["prompt"] = prompt
        if self.language:
            params["language"] = self.language
        try:
            with path.open("rb") as fh:
                reply = self.client.audio.transcriptions.create(file=(path.name, fh), **params)
        except Exception as exc:
            raise map_error(exc) from exc
        return self._transcript(reply, local_seconds)

    def _transcript(self, reply: Any, local_seconds: float | None) -> Transcript:
        data = as_dict(reply)
        text = data.get("text")
        if not isinstance(text, str):
            raise invalid("the transcription reply has no text")
        segments: list[dict[str, Any]] = []
        weighted = weight_total = 0.0
        raw_segments = data.get("segments") or []
        if not isinstance(raw_segments, list):
            raise invalid("the transcription reply's segments are not a list")
        for seg in raw_segments:
            if not isinstance(seg, dict):
                raise invalid("a transcription segment is not an object")
            start, end, seg_text = (
                number(seg.get("start")),
                number(seg.get("end")),
                seg.get("text"),
            )
            if start is None or end is None or not isinstance(seg_text, str):
                raise invalid("a transcription segment lacks start, end or text")
            if end < start or start < 0:
                raise invalid("a transcription segment ends before it starts")
            segments.append(
                {"start": round(start, 2), "end": round(end, 2), "text": seg_text.strip()}
            )
            logprob = number(seg.get("avg_logprob"))
            if logprob is not None:
                span = max(end - start, 0.01)
                weighted += span * math.exp(min(logprob, 0.0))
                weight_total += span
        duration = number(data.get("duration"))
        if duration is None or duration < 0:
            if local_seconds is not None:
                duration = local_seconds
            else:
                duration = float(segments[-1]["end"]) if segments else 0.0
        usage_seconds = _usage_seconds(data.get("usage"))
        language = data.get("language")
        clean = " ".join(text.split())
        if not segments and clean:
            segments = [{"start": 0.0, "end": round(duration, 2), "text": clean}]
        return Transcript(
            full_text=clean,
            segments=segments,
            duration_seconds=round(duration, 3),
            word_count=len(clean.split()),
            confidence=round(weighted / weight_total, 4) if weight_total else None,
            model=self.model,
            language=language if isinstance(language, str) else None,
            usage=Usage(
                model=self.model,
                audio_seconds=usage_seconds if usage_seconds is not None else duration,
            ),
        )


def hint_prompt(hints: Sequence[str]) -> str:
    """Whisper's prompt from roster names: it biases spelling toward words it has seen."""
    names: list[str] = []
    size = 0
    for hint in hints:
        name = " ".join(str(hint).split())
        if not name or name in names:
            continue
        if size + len(name) + 2 > MAX_PROMPT_CHARS:
            break
        names.append(name)
        size += len(name) + 2
    return f"Coach's note about players: {', '.join(names)}." if names else ""


def _usage_seconds(usage: Any) -> float | None:
    seconds = number(usage.get("seconds")) if isinstance(usage, dict) else None
    return seconds if seconds is not None and seconds >= 0 else None
