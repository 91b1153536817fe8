"""The ``voicewatch`` command: thin loops over library calls (see CONTRACT.md).

Exit codes: 0 on success, 2 on bad usage, 1 on failure with a one-line error.
One module per command group, each registering its commands on the root
``app`` (``base``) when imported here; a new group is a new module and one
import line below.
"""

from __future__ import annotations

import sys

from voicewatch.cli import admin, clubs, ingest, jobs, pipeline, serve  # noqa: F401 (registers)
from voicewatch.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
