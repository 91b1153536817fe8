"""The reference voice-note pipeline: stages, providers, claims extraction and name resolution.

The pure parts (``topics``, ``claims``, ``resolution``) do no
I/O beyond reading the package's own data files, so they can be tested and benchmarked
offline; the stages wire them to the store and report through ``voicewatch.emitter``.
"""
