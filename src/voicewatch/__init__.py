"""voicewatch: a voice-note pipeline for coaches and the harness that watches it."""

__version__ = "0.1.0"
