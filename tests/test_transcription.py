"""Transcripts' own vocabulary: the text passthrough and hint words."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicewatch.pipeline.transcription import TextPassthrough, TranscriptionError, hint_words


def test_text_passthrough_is_a_transcript_with_full_confidence(tmp_path: Path) -> None:
    t = TextPassthrough().transcribe_text("  Liam rolled his ankle.\n Rest him.  ")
    assert t.full_text == "Liam rolled his ankle. Rest him."
    assert (t.model, t.confidence, t.word_count, t.duration_seconds) == ("text", 1.0, 6, 0.0)
    assert t.segments == [{"start": 0.0, "end": 0.0, "text": t.full_text}]

    note = tmp_path / "note.txt"
    note.write_text("Ava scored twice.", encoding="utf-8")
    assert TextPassthrough().transcribe(note).full_text == "Ava scored twice."
    assert TextPassthrough().transcribe_text("").segments == []
    with pytest.raises(TranscriptionError) as err:
        TextPassthrough().transcribe(tmp_path / "missing.txt")
    assert err.value.code == "file_not_found"


def test_hint_words_split_fold_and_keep_the_roster_spelling() -> None:
    assert hint_words(["Ava O'Connell", "José Núñez-Smith", "J", "ava"]) == {
        "ava": "Ava",
        "oconnell": "O'Connell",
        "jose": "José",
        "nunez": "Núñez",
        "smith": "Smith",
    }
