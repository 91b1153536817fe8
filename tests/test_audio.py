"""The audio reader and espeak-ng synthesis: PCM layouts, resampling, sniffing, errors.

Synthesis needs espeak-ng: under CI (``CI`` set) its absence fails the test, elsewhere
it is skipped with the reason. The rest needs nothing but Python.
"""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path

import pytest

from services import require_espeak
from voicewatch.pipeline import audio
from voicewatch.pipeline.audio import AudioError, SynthesisError, read_audio, resample
from wav_files import tone, write_wav

# --- the audio reader -------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_read_audio_handles_every_pcm_width_and_downmixes(tmp_path: Path, width: int) -> None:
    samples = tone(300, 0.1, 16000)
    path = write_wav(tmp_path / "w.wav", samples, rate=16000, width=width, channels=2)
    pcm = read_audio(path)
    assert pcm.rate == 16000
    assert len(pcm.samples) == len(samples)
    tolerance = 256 if width == 1 else 1
    assert max(abs(a - b) for a, b in zip(pcm.samples, samples, strict=True)) <= tolerance


def test_resample_keeps_speech_band_and_removes_what_would_alias() -> None:
    def rms(xs: array.array) -> float:
        core = xs[200:-200]
        return math.sqrt(sum(v * v for v in core) / len(core))

    kept = resample(array.array("h", tone(1000, 1.0, 22050)), 22050, 16000)
    gone = resample(array.array("h", tone(10000, 1.0, 22050)), 22050, 16000)
    up = resample(array.array("h", tone(1000, 1.0, 8000)), 8000, 16000)
    assert len(kept) == 16000
    assert len(up) == 16000
    assert rms(kept) == pytest.approx(8000 / math.sqrt(2), rel=0.02)
    assert rms(up) == pytest.approx(8000 / math.sqrt(2), rel=0.02)
    assert rms(gone) < 50  # 10 kHz cannot exist at 16 kHz: filtered, not folded to 6 kHz


def test_sniff_format_reads_bytes_not_names(tmp_path: Path) -> None:
    cases = {
        "a.mp3": b"OggS" + bytes(20),
        "b.ogg": b"ID3" + bytes(20),
        "c.txt": b"fLaC" + bytes(20),
        "d.wav": b"hello world, not audio",
    }
    found = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        found[name] = audio.sniff_format(tmp_path / name)
    assert found == {"a.mp3": "ogg", "b.ogg": "mp3", "c.txt": "flac", "d.wav": None}


def test_inspect_audio_reports_format_and_duration(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", tone(440, 0.5, 8000), rate=8000)
    assert audio.inspect_audio(path) == ("wav", pytest.approx(0.5))
    with pytest.raises(AudioError) as err:
        audio.inspect_audio(path, max_seconds=0.25)
    assert err.value.code == "audio_too_long"


# --- synthesis --------------------------------------------------------------------------


def test_synthesize_writes_a_wav(tmp_path: Path) -> None:
    require_espeak()
    out = audio.synthesize("-Liam scored twice.", tmp_path / "deep" / "s.wav")
    with wave.open(str(out)) as w:
        assert w.getnchannels() == 1
        assert w.getnframes() / w.getframerate() > 0.5


def test_synthesize_without_espeak_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    assert audio.espeak_available() is False
    with pytest.raises(SynthesisError) as err:
        audio.synthesize("hello", tmp_path / "x.wav")
    message = str(err.value)
    assert "espeak-ng" in message
    assert "\n" not in message
