"""Which recogniser transcribes audio notes here, and why: one answer for the worker and health.

Why one place: ``VOICEWATCH_TRANSCRIBER=auto`` (the default) means Whisper when the
``whisper`` extra and a model directory are installed, pocketsphinx otherwise; the
worker must pick the engine the health answer reports, and staff must see when a
requested Whisper fell back (extra or model absent) or was refused (a model file that
does not match its pinned digest: those notes fail with ``model_unverified``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from voicewatch.config import Settings
from voicewatch.pipeline.model_files import ModelRefused, default_model_dir, verify_model_dir
from voicewatch.pipeline.whisper import whisper_available

ENGINES = ("auto", "whisper", "local", "openai")


@dataclass(frozen=True)
class Choice:
    """``engine`` is ``whisper``, ``local`` or ``openai``; ``reason`` says why, if a fallback."""

    engine: str
    model_dir: Path | None = None
    reason: str = ""


def choose_transcriber(settings: Settings) -> Choice:
    """The engine for audio notes under ``settings`` (cheap: no hashing, no loading)."""
    wanted = settings.transcriber
    if wanted == "openai":
        return Choice("openai")
    if wanted == "local":
        return Choice("local")
    if wanted not in ENGINES:
        return Choice("local", reason=f"unknown VOICEWATCH_TRANSCRIBER {wanted!r}")
    if not whisper_available():
        return Choice(
            "local", reason="faster-whisper is not installed (pip install 'voicewatch[whisper]')"
        )
    directory = Path(settings.whisper_model_dir) if settings.whisper_model_dir else None
    if directory is None:
        directory = default_model_dir()
        if directory is None:
            return Choice("local", reason="no whisper model: set VOICEWATCH_WHISPER_MODEL_DIR")
    elif not directory.is_dir():
        return Choice("local", reason=f"whisper model directory {directory} does not exist")
    return Choice("whisper", directory)


def transcriber_status(settings: Settings) -> str:
    """One line for the health answer: the engine that runs, its model, or why not Whisper.

    ``whisper faster-whisper-tiny.en``, ``pocketsphinx`` (with the fallback's reason
    after a colon), ``openai whisper-1``, or ``whisper refused: <file> ...``.
    """
    choice = choose_transcriber(settings)
    if choice.engine == "openai":
        return "openai whisper-1"
    if choice.engine == "local":
        return f"pocketsphinx: {choice.reason}" if choice.reason else "pocketsphinx"
    assert choice.model_dir is not None
    return _verified_status(choice.model_dir, _fingerprint(choice.model_dir))


def _fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times: a changed file is hashed again."""
    try:
        return tuple(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.iterdir())
        )
    except OSError:
        return ()


@functools.lru_cache(maxsize=8)
def _verified_status(directory: Path, _fingerprint: tuple[tuple[str, int, int], ...]) -> str:
    try:
        model = verify_model_dir(directory)
    except ModelRefused as exc:
        return f"whisper refused: {exc.message}"
    return f"whisper faster-whisper-{model.name}"
