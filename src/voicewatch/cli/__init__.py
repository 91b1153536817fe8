"""The ``voicewatch`` command: thin loops over library calls (see CONTRACT.md).

Exit codes: 0 on success, 2 on bad usage, 1 on failure with a one-line error.
One module per command group, each registering its commands on the root
``app`` (``base``) when imported here, in the order ``--help`` lists them; a
new group is a new module and one name in ``GROUPS``.
"""

from __future__ import annotations

import importlib
import sys

from voicewatch.cli.base import app

#: The command groups, in ``--help`` order (each module registers its commands on import).
GROUPS = ("admin", "ingest", "serve", "clubs", "coaches", "pipeline", "guards", "jobs")
for _group in GROUPS:
    importlib.import_module(f"voicewatch.cli.{_group}")

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
