"""Small WAV files written in the tests: any PCM width, rate and channel count.

Why a helper: the audio reader's tests and the recognisers' error tests need the same
odd layouts (8-bit, 24-bit, stereo, empty) that no synthesiser writes.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path


def write_wav(
    path: Path, samples: list[int], *, rate: int, width: int = 2, channels: int = 1
) -> Path:
    """A PCM WAV from int16-scale ``samples`` (repeated on every channel), at ``width`` bytes."""
    frames = bytearray()
    for s in samples:
        if width == 1:
            one = bytes([(s >> 8) + 128])
        else:
            one = (s << (8 * (width - 2))).to_bytes(width, "little", signed=True)
        frames += one * channels
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def tone(freq: float, seconds: float, rate: int, amp: int = 8000) -> list[int]:
    """A sine wave at int16 scale."""
    return [int(amp * math.sin(2 * math.pi * freq * n / rate)) for n in range(int(seconds * rate))]
