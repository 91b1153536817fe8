"""How the emitter logs: one logger (``voicewatch.emitter``), one line per error, sparse in a storm.

Every part of the package logs through :data:`log`, so a caller silences or routes the
emitter's messages with one logger name, as before the package was split.
"""

from __future__ import annotations

import logging

log = logging.getLogger("voicewatch.emitter")


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (300 characters at most), for one-line logs."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def log_sparsely(count: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th, ... occurrence: a storm cannot flood the log."""
    return count & (count - 1) == 0
