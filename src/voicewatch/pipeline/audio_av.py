"""Decoding (and, for tests and benchmarks, encoding) compressed audio with PyAV.

Why PyAV: a coach's note arrives as WhatsApp's OGG/Opus, an app's M4A/AAC, or an MP3.
PyAV's wheel carries FFmpeg's decoders (and the Opus, AAC and MP3 encoders), so no
system codec is needed; it comes with the ``whisper`` extra (faster-whisper needs it).
Without it ``audio.read_audio`` falls back to sox.

Damage is told apart from a short note: FFmpeg's decoding errors, no decodable
samples, or far fewer samples than the container's header promises (a cut-off
upload) are ``corrupt_audio``.
"""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any

from voicewatch.pipeline.pcm import AudioError, Pcm, check_length

#: A stream that decodes to less than this share of its declared length is cut short.
TRUNCATED_SHARE = 0.9
#: ... unless the shortfall is under this many seconds (encoder delay, rounding).
TRUNCATED_SLACK_SECONDS = 0.5

#: Formats ``encode`` writes: container, codec, sample rate, bit rate as phones send
#: them (WhatsApp: Opus at about 16 kb/s; voice-memo apps: AAC or MP3 at 32 kb/s or more).
_ENCODINGS: dict[str, tuple[str, str, int, int]] = {
    "ogg": ("ogg", "libopus", 48_000, 16_000),
    "m4a": ("mp4", "aac", 16_000, 32_000),
    "mp3": ("mp3", "libmp3lame", 16_000, 32_000),
}


def read_with_av(path: Path, fmt: str, rate: int, max_seconds: float | None) -> Pcm:
    """Decode ``path`` to 16-bit mono PCM at ``rate`` Hz; raises ``AudioError``."""
    import av

    if fmt == "ogg":
        _require_ogg_end(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(
            f"cannot decode {path.name} as {fmt}: {_reason(exc)}", "corrupt_audio"
        ) from exc
    with container:
        if not container.streams.audio:
            raise AudioError(f"{path.name} holds no audio stream", "not_audio")
        declared = container.duration / 1_000_000 if container.duration else None
        if declared is not None:
            check_length(declared, max_seconds, path.name)
        chunks = _decode(container, path, fmt, rate, max_seconds)
    samples = array.array("h")
    for chunk in chunks:
        samples.frombytes(chunk)
    if not samples:
        raise AudioError(f"{path.name} decodes to no audio samples", "corrupt_audio")
    pcm = Pcm(samples, rate)
    if declared is not None and pcm.duration_seconds < min(
        declared * TRUNCATED_SHARE, declared - TRUNCATED_SLACK_SECONDS
    ):
        raise AudioError(
            f"{path.name} is cut short: its header promises {declared:.1f} s, "
            f"{pcm.duration_seconds:.1f} s decode",
            "corrupt_audio",
        )
    return pcm


def _decode(
    container: Any, path: Path, fmt: str, rate: int, max_seconds: float | None
) -> list[bytes]:
    """The first audio stream as s16 mono ``rate`` Hz byte chunks."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks: list[bytes] = []
    decoded = 0
    try:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                data = _plane_bytes(out)
                chunks.append(data)
                decoded += len(data) // 2
            if max_seconds is not None:
                check_length(decoded / rate, max_seconds, path.name)
        for out in resampler.resample(None):
            chunks.append(_plane_bytes(out))
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, EOFError) as exc:
        raise AudioError(
            f"cannot decode {path.name} as {fmt}: {_reason(exc)}", "corrupt_audio"
        ) from exc
    return chunks


def _require_ogg_end(path: Path) -> None:
    """``corrupt_audio`` unless the Ogg stream ends with a whole end-of-stream page.

    Why: an Ogg header states no length, so FFmpeg decodes a cut-off voice note as a
    shorter valid one. Every Ogg writer closes the stream with a page flagged
    end-of-stream (RFC 3533), which a cut-off upload lacks.
    """
    data = path.read_bytes()[-70_000:]  # an Ogg page is at most 65,307 bytes
    at = data.rfind(b"OggS")
    if at < 0 or len(data) - at < 27:
        raise AudioError(f"{path.name} is cut short: no whole Ogg page at its end", "corrupt_audio")
    flags, segments = data[at + 5], data[at + 26]
    table = data[at + 27 : at + 27 + segments]
    end = at + 27 + segments + sum(table)
    if len(table) < segments or end != len(data) or not flags & 0x04:
        raise AudioError(
            f"{path.name} is cut short: its Ogg stream has no end-of-stream page",
            "corrupt_audio",
        )


def _plane_bytes(frame: Any) -> bytes:
    """The frame's packed s16 samples (a plane may carry alignment padding)."""
    return bytes(frame.planes[0])[: frame.samples * 2]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def encode(pcm: Pcm, out_path: Path | str, fmt: str, *, bitrate: int | None = None) -> Path:
    """Write ``pcm`` as mono ``fmt`` (``ogg`` = Opus, ``m4a`` = AAC, ``mp3``).

    ``bitrate`` (b/s) defaults to what phones send (``_ENCODINGS``); the benchmark and
    the tests use this to make the notes a coach's phone would.
    """
    import av

    container_fmt, codec, out_rate, default_bitrate = _ENCODINGS[fmt]
    out = Path(out_path)
    with av.open(str(out), "w", format=container_fmt) as container:
        stream: Any = container.add_stream(codec, rate=out_rate)
        stream.layout = "mono"
        stream.bit_rate = bitrate or default_bitrate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=out_rate)
        frame = av.AudioFrame.from_ndarray(_as_row(pcm), format="s16", layout="mono")
        frame.sample_rate = pcm.rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def _as_row(pcm: Pcm) -> Any:
    import numpy as np

    return np.frombuffer(pcm.samples.tobytes(), dtype=np.int16).reshape(1, -1)
