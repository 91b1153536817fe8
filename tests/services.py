"""One rule for a service or tool a test needs and cannot reach: fail under CI, skip elsewhere.

Under CI (``CI`` set) a missing PostgreSQL, Redis, Chromium, espeak-ng or sox is a
broken machine, and a skip would hide it, so the test fails. On a laptop without it the
test is skipped, with the reason in the summary. Every such check in the suite goes
through :func:`unavailable`.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

IN_CI = bool(os.environ.get("CI"))


def unavailable(message: str) -> NoReturn:
    """Fail under CI (a missing service must never pass silently), skip elsewhere."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_espeak() -> None:
    """espeak-ng synthesises the audio notes of the pipeline and transcription tests."""
    from voicewatch.pipeline import audio

    if not audio.espeak_available():
        unavailable("espeak-ng is not installed (apt-get install espeak-ng; make test installs it)")


def require_command(name: str) -> None:
    """A command-line tool the test runs (``sox``, ...) must be on ``PATH``."""
    if shutil.which(name) is None:
        unavailable(f"{name} is not installed (make test installs it)")
