"""The coach loop (issue 12): coaches as people, their inbox, and what they decide.

Modules, one idea each: :mod:`.people` (coaches with a name and an organization,
the CLI's ``coach add`` and the coaches CSV import), :mod:`.inbox` (a coach's
pending drafts and waiting names, read in one query each). The decisions
themselves are the pipeline's (``voicewatch.pipeline.decisions``), because a
decision moves a claim on, generates its draft and emits events.
"""
