"""The offline transcriber: real pocketsphinx on speech synthesised by Debian's espeak-ng.

The audio tests need espeak-ng: under CI (``CI`` set) its absence fails them, elsewhere
they are skipped with the reason. The error cases need nothing but Python.
"""

from __future__ import annotations

import array
import json
import wave
from importlib import resources
from pathlib import Path

import pytest

from services import require_command, require_espeak
from voicewatch.pipeline import audio
from voicewatch.pipeline.pocketsphinx import COACHING_WORDS, LocalTranscriber
from voicewatch.pipeline.transcription import Transcriber, TranscriptionError
from voicewatch.pipeline.wer import normalize_words, word_error_rate, word_errors
from wav_files import tone, write_wav

#: Corpus WER with hints on the six notes below, measured 0.26 (0.31 without hints);
#: the bound leaves room for other espeak-ng and pocketsphinx builds.
MAX_TEST_WER = 0.45


def _corpus() -> dict:
    ref = resources.files("voicewatch.pipeline").joinpath("wer_corpus/coach_notes.json")
    return json.loads(ref.read_text(encoding="utf-8"))


CORPUS = _corpus()
NOTES: list[tuple[str, list[str]]] = [(n, CORPUS["roster"]) for n in CORPUS["notes"][:3]] + [
    (n, CORPUS["held_out_roster"]) for n in CORPUS["held_out"][:3]
]


@pytest.fixture(scope="module")
def recognizer() -> LocalTranscriber:
    return LocalTranscriber()


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, list[str], Path]]:
    """The six test notes read aloud by espeak-ng: (text, roster, wav)."""
    require_espeak()
    folder = tmp_path_factory.mktemp("spoken")
    return [
        (text, roster, audio.synthesize(text, folder / f"note_{i}.wav"))
        for i, (text, roster) in enumerate(NOTES)
    ]


# --- recognition on synthesised speech --------------------------------------------------


def test_local_transcriber_word_error_rate_on_synthesised_notes(
    recognizer: LocalTranscriber, spoken: list[tuple[str, list[str], Path]]
) -> None:
    edits = words = 0
    for text, roster, wav in spoken:
        transcript = recognizer.transcribe(wav, hints=roster)
        e, n = word_errors(text, transcript.full_text)
        edits += e
        words += n
    assert edits / words < MAX_TEST_WER, f"corpus WER {edits / words:.3f}"


def test_transcript_has_timed_segments_confidence_and_model(
    recognizer: LocalTranscriber, spoken: list[tuple[str, list[str], Path]]
) -> None:
    assert isinstance(recognizer, Transcriber)
    _, roster, wav = spoken[0]
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    t = recognizer.transcribe(wav, hints=roster)

    assert t.model == "pocketsphinx"
    assert t.duration_seconds == pytest.approx(seconds, abs=0.01)
    assert t.confidence is not None
    assert 0.0 < t.confidence <= 1.0
    assert t.word_count == len(t.full_text.split()) > 5
    assert t.segments
    assert " ".join(s["text"] for s in t.segments) == t.full_text
    previous_end = 0.0
    for seg in t.segments:
        assert set(seg) == {"start", "end", "text"}
        assert previous_end <= seg["start"] < seg["end"] <= seconds + 0.05
        previous_end = seg["end"]
    assert t.to_dict()["segments"] == t.segments


def test_hints_let_the_recognizer_hear_names_it_does_not_know(
    recognizer: LocalTranscriber, tmp_path: Path
) -> None:
    require_espeak()
    wav = audio.synthesize("Freya Lindqvist pulled her hamstring in training.", tmp_path / "f.wav")
    plain = LocalTranscriber(use_hints=False).transcribe(wav)
    hinted = recognizer.transcribe(wav, hints=["Freya Lindqvist", "Liam Carter"])

    assert "lindqvist" not in normalize_words(plain.full_text)  # not in the stock vocabulary
    assert "Lindqvist" in hinted.full_text.split()  # added, with the roster's spelling
    assert word_error_rate("Freya Lindqvist pulled her hamstring in training", hinted.full_text) < (
        word_error_rate("Freya Lindqvist pulled her hamstring in training", plain.full_text)
    )


def test_a_transcript_does_not_depend_on_the_notes_decoded_before(
    recognizer: LocalTranscriber, spoken: list[tuple[str, list[str], Path]]
) -> None:
    (_, roster_a, first), (_, _, second), (_, roster_c, other) = spoken[0], spoken[1], spoken[4]
    before = recognizer.transcribe(first, hints=roster_a).full_text
    recognizer.transcribe(other, hints=roster_c)  # another club's roster in between
    recognizer.transcribe(second)  # and no hints at all
    assert recognizer.transcribe(first, hints=roster_a).full_text == before


def test_any_wav_layout_is_converted(
    recognizer: LocalTranscriber, spoken: list[tuple[str, list[str], Path]], tmp_path: Path
) -> None:
    """44.1 kHz stereo 24-bit PCM, decoded and resampled in pure Python."""
    text, roster, wav = spoken[3]
    with wave.open(str(wav)) as w:
        mono = array.array("h", w.readframes(w.getnframes()))
        rate = w.getframerate()
    doubled = [s for s in mono for _ in range(2)]  # 22.05 -> 44.1 kHz by sample repetition
    wide = write_wav(tmp_path / "stereo24.wav", doubled, rate=rate * 2, width=3, channels=2)

    t = recognizer.transcribe(wide, hints=roster)
    assert t.duration_seconds == pytest.approx(len(mono) / rate, abs=0.01)
    assert word_error_rate(text, t.full_text) < 0.6


def test_other_formats_go_through_sox_without_pyav(
    recognizer: LocalTranscriber,
    spoken: list[tuple[str, list[str], Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess

    require_command("sox")
    monkeypatch.setattr(audio, "pyav_available", lambda: False)  # as without the extra
    text, roster, wav = spoken[4]
    flac = tmp_path / "note.flac"
    subprocess.run(["sox", str(wav), str(flac)], check=True)
    t = recognizer.transcribe(flac, hints=roster)
    assert word_error_rate(text, t.full_text) < 0.6


# --- errors -----------------------------------------------------------------------------


@pytest.fixture
def quick() -> LocalTranscriber:
    """A transcriber that is never asked to decode (errors come before the decoder)."""
    return LocalTranscriber(max_duration_seconds=1.0)


def _code(transcriber: LocalTranscriber, path: Path) -> str:
    with pytest.raises(TranscriptionError) as err:
        transcriber.transcribe(path)
    assert str(err.value)
    return err.value.code


def test_missing_file(quick: LocalTranscriber, tmp_path: Path) -> None:
    assert _code(quick, tmp_path / "nope.wav") == "file_not_found"


def test_text_renamed_to_wav_is_not_audio(quick: LocalTranscriber, tmp_path: Path) -> None:
    fake = tmp_path / "note.wav"
    fake.write_text("Liam rolled his ankle.\n")
    assert _code(quick, fake) == "not_audio"


def test_empty_file_is_not_audio(quick: LocalTranscriber, tmp_path: Path) -> None:
    empty = tmp_path / "note.wav"
    empty.write_bytes(b"")
    assert _code(quick, empty) == "not_audio"


def test_broken_wav_header_is_not_audio(quick: LocalTranscriber, tmp_path: Path) -> None:
    broken = tmp_path / "note.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")
    assert _code(quick, broken) == "not_audio"


def test_wav_without_samples_is_empty_audio(quick: LocalTranscriber, tmp_path: Path) -> None:
    assert _code(quick, write_wav(tmp_path / "n.wav", [], rate=16000)) == "empty_audio"


def test_audio_over_the_maximum_is_refused(quick: LocalTranscriber, tmp_path: Path) -> None:
    long = write_wav(tmp_path / "long.wav", tone(440, 1.5, 8000), rate=8000)
    assert _code(quick, long) == "audio_too_long"
    assert LocalTranscriber().max_duration_seconds == 600.0  # ten minutes by default


def test_non_wav_audio_without_pyav_or_sox_is_unsupported(
    quick: LocalTranscriber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio, "sox_available", lambda: False)
    monkeypatch.setattr(audio, "pyav_available", lambda: False)
    ogg = tmp_path / "note.ogg"
    ogg.write_bytes(b"OggS" + bytes(60))
    assert _code(quick, ogg) == "unsupported_audio"


def test_the_coaching_vocabulary_comes_from_the_topic_cues() -> None:
    assert "hamstring" in COACHING_WORDS
