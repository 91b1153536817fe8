"""Guessed pronunciations for names the recogniser's dictionary lacks."""

from __future__ import annotations

from voicewatch.pipeline.pronunciation import guess_pronunciation

_PHONES = "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH"
#: The phones of the recogniser's acoustic model (CMU ARPABET, no stress marks).
ARPABET = frozenset([*_PHONES.split(" "), "UH", "UW", "V", "W", "Y", "Z", "ZH"])


def test_guessed_pronunciations_use_only_the_model_phones() -> None:
    assert guess_pronunciation("Lindqvist") == "L IH N D K V IH S T"
    assert guess_pronunciation("Blake") == "B L EY K"
    assert guess_pronunciation("Zara") == "Z AA R AH"
    assert guess_pronunciation("") == ""
    for word in ["Okafor", "Nguyen", "Siobhan", "Kowalczyk", "Xavier", "Yusuf", "Ørjan", "O'Neill"]:
        phones = guess_pronunciation(word).split()
        assert phones
        assert set(phones) <= ARPABET, word
