"""The offline claims extractor: a coach's note becomes atomic, topic-labelled claims.

Deterministic rules, no model and no network, so the pipeline does the real job with no
AI account and the result of a note never changes between runs. The steps:

1. Clean the text (HTML tags and entities, odd quotes, control characters).
2. Split it into sentences on ``. ! ?`` and newlines, without breaking on titles
   ("Dr. Walsh"), initials ("J. Kinsella"), abbreviations or decimals ("6.30pm").
3. Find player names: the roster's full names, first names, surnames and nicknames,
   matched case- and accent-insensitively and through possessives ("Sean's",
   "doyles"), plus capitalised words that behave like a person's name when the roster
   does not know them. Common words that are also names ("will", "mark") count only
   where a name can stand.
4. Score the topic lexicons of :mod:`voicewatch.pipeline.topics` over stemmed tokens;
   a cue inside the scope of a negation ("no injuries", "not at training") counts for
   less, because it reports the absence of the thing.
5. Cut each sentence into clauses at conjunctions, commas, discourse markers ("also",
   "another thing", "and then") and, in unpunctuated transcripts, where a new subject
   starts; then glue back the pieces that do not carry a fact of their own, so that one
   sentence with two facts about two players gives two claims and a list of names stays
   one claim.
6. Give a clause without a name the name of the player it is about when a pronoun or a
   missing subject points back to the previous claim ("Told his dad...").
7. Emit one claim per clause and topic, with a confidence from the lexicon evidence.

Modules, in the order of the steps: :mod:`.text` (1, 2), :mod:`.names` (3), :mod:`.lexicon`
(4), :mod:`.clauses` (5, 6), :mod:`.extract` (7), with the word lists in :mod:`.words`;
:mod:`.scoring` measures the result against the annotated corpus.

It must not fail on any string: every step is linear in the text, and the text is cut at
:data:`MAX_TEXT_CHARS`.
"""

from voicewatch.pipeline.claims.extract import Claim, extract_claims
from voicewatch.pipeline.claims.text import MAX_TEXT_CHARS, clean_text, fold, split_sentences, stem

__all__ = [
    "MAX_TEXT_CHARS",
    "Claim",
    "clean_text",
    "extract_claims",
    "fold",
    "split_sentences",
    "stem",
]
