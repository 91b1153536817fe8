"""Where uploaded voice notes live, and the checks an upload must pass first.

The client's file name is never used as a path: only its extension is kept,
after the bytes themselves have been recognised as audio, so neither path
traversal nor a disguised upload gets through.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from voicewatch.config import Settings

MAX_AUDIO_BYTES = 25 * 1024 * 1024

#: container signatures: (offset, magic bytes, extension)
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "wav"),
    (0, b"OggS", "ogg"),
    (0, b"fLaC", "flac"),
    (0, b"ID3", "mp3"),
    (0, b"\x1a\x45\xdf\xa3", "webm"),
    (4, b"ftyp", "m4a"),
)


class UploadError(ValueError):
    """The upload is not an audio file we accept; the message says why."""


def sniff_audio(data: bytes) -> str:
    """The audio container's extension, recognised from the bytes (not the name)."""
    for offset, magic, ext in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            if ext == "wav" and data[8:12] != b"WAVE":
                break
            return ext
    if len(data) > 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "mp3"  # an MPEG audio frame without an ID3 tag
    raise UploadError("the upload is not audio (WAV, MP3, OGG, FLAC, M4A or WebM)")


def store_upload(settings: Settings, filename: str, data: bytes) -> Path:
    """Check and save an uploaded note; returns where it was stored."""
    if not data:
        raise UploadError("the audio file is empty")
    if len(data) > MAX_AUDIO_BYTES:
        raise UploadError(f"the audio file is larger than {MAX_AUDIO_BYTES // (1024 * 1024)} MB")
    ext = sniff_audio(data)
    directory = Path(settings.audio_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.{ext}"
    path.write_bytes(data)
    return path
