"""The word error rate the tests and the benchmark share."""

from __future__ import annotations

from voicewatch.pipeline.wer import word_error_rate, word_errors


def test_word_error_rate() -> None:
    assert word_error_rate("Liam rolled his ankle.", "liam rolled his ankle") == 0.0
    assert word_error_rate("Ava's knee, again!", "avas knee again") == 0.0
    assert word_error_rate("a b c d", "a x c d") == 0.25  # substitution
    assert word_error_rate("a b c d", "a c d") == 0.25  # deletion
    assert word_error_rate("a b c d", "a b c d e f") == 0.5  # insertions
    assert word_error_rate("a b", "c d e f g") == 2.5  # can exceed 1
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "words") == 1.0
    assert word_errors("Warm-up was José's idea", "warm up was joses idea") == (0, 5)
