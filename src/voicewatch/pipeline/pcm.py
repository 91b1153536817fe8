"""Decoded audio and the audio errors: what every reader (WAV, PyAV, sox) returns and raises.

Its own module so the readers can share it without importing each other
(``audio`` picks a reader; ``audio_av`` is one of them).
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass


class AudioError(ValueError):
    """The file cannot be read as audio; ``code`` says why, for the caller's error code.

    Codes: ``file_not_found``, ``not_audio`` (empty, or bytes of no audio format),
    ``unsupported_audio`` (a real audio format we cannot decode here, e.g. OGG without
    PyAV or sox), ``corrupt_audio`` (an audio header, but the stream is damaged or cut
    short), ``audio_too_long``, ``empty_audio`` (a valid file with no samples).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Pcm:
    """Decoded audio: signed 16-bit mono samples at ``rate`` Hz."""

    samples: array.array
    rate: int

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0

    def to_bytes(self) -> bytes:
        """Little-endian 16-bit PCM, as pocketsphinx's ``process_raw`` expects."""
        if sys.byteorder == "little":
            return self.samples.tobytes()
        swapped = array.array("h", self.samples)
        swapped.byteswap()
        return swapped.tobytes()


def check_length(seconds: float, max_seconds: float | None, name: str) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(
            f"{name} is {seconds:.0f} s long; the limit is {max_seconds:.0f} s",
            "audio_too_long",
        )
