"""Real phone formats through ``audio.read_audio``: OGG/Opus, M4A/AAC, MP3, WAV, and damage.

The compressed notes are made from a note espeak-ng reads, encoded by PyAV (the
``whisper`` extra) the way phones send them: mono, 16 kb/s. Under CI a missing PyAV or
espeak-ng fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services import unavailable
from voicewatch.pipeline import audio
from voicewatch.pipeline.audio import AudioError, read_audio

TEXT = "Sean Murphy has a hamstring injury and will miss the match on Saturday"
FORMATS = ("wav", "ogg", "m4a", "mp3")


def require(available: bool, what: str) -> None:
    if available:
        return
    unavailable(f"{what} is not installed (make test installs it)")


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same spoken note as WAV (22.05 kHz, espeak-ng) and as OGG/Opus, M4A/AAC, MP3."""
    require(audio.espeak_available(), "espeak-ng")
    require(audio.pyav_available(), "PyAV (pip install 'voicewatch[whisper]')")
    from voicewatch.pipeline import audio_av

    folder = tmp_path_factory.mktemp("formats")
    wav = audio.synthesize(TEXT, folder / "note.wav")
    pcm = read_audio(wav)
    out = {"wav": wav}
    for fmt in FORMATS[1:]:
        out[fmt] = audio_av.encode(pcm, folder / f"note.{fmt}", fmt)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_decodes_to_the_whole_note(notes: dict[str, Path], fmt: str) -> None:
    reference = read_audio(notes["wav"]).duration_seconds
    path = notes[fmt]
    assert audio.sniff_format(path) == fmt
    pcm = read_audio(path)
    assert pcm.rate == audio.TARGET_RATE
    # AAC adds up to a frame of priming samples; the others decode sample-exact
    assert pcm.duration_seconds == pytest.approx(reference, abs=0.15)
    loud = max(abs(s) for s in pcm.samples)
    assert loud > 3000  # speech, not silence


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_cut_off_upload_is_corrupt_audio(
    notes: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    data = notes[fmt].read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError) as info:
        read_audio(cut)
    assert info.value.code == "corrupt_audio"
    assert f"cut.{fmt}" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", ("ogg", "m4a", "mp3"))
def test_a_damaged_stream_is_corrupt_audio(
    notes: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    data = bytearray(notes[fmt].read_bytes())
    for i in range(300, min(len(data), 3000)):  # keep the header, garble the stream
        data[i] ^= 0x5A
    bad = tmp_path / f"bad.{fmt}"
    bad.write_bytes(bytes(data))
    with pytest.raises(AudioError) as info:
        read_audio(bad)
    assert info.value.code == "corrupt_audio"


def test_a_header_and_nothing_else_is_refused(tmp_path: Path) -> None:
    require(audio.pyav_available(), "PyAV")
    for name, head in (
        ("a.ogg", b"OggS"),
        ("b.m4a", b"\x00\x00\x00\x18ftypM4A "),
        ("c.mp3", b"ID3"),
    ):
        path = tmp_path / name
        path.write_bytes(head + bytes(200))
        with pytest.raises(AudioError) as info:
            read_audio(path)
        assert info.value.code in ("corrupt_audio", "not_audio"), name


def test_the_duration_limit_holds_for_compressed_notes(notes: dict[str, Path]) -> None:
    with pytest.raises(AudioError) as info:
        read_audio(notes["ogg"], max_seconds=1.0)
    assert info.value.code == "audio_too_long"


def test_sox_decodes_when_pyav_is_absent(
    notes: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(audio.sox_available(), "sox")
    flac = tmp_path / "note.flac"
    subprocess.run(["sox", str(notes["wav"]), str(flac)], check=True)
    with_av = read_audio(flac)
    monkeypatch.setattr(audio, "pyav_available", lambda: False)
    with_sox = read_audio(flac)
    assert with_sox.duration_seconds == pytest.approx(with_av.duration_seconds, abs=0.02)
