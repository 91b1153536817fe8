"""The error vocabulary: ``ApiError`` and the JSON body ``{"error", "detail"}``.

What a route raises, and nothing that renders: the handlers that turn these
into JSON or an HTML page live in ``error_handlers`` (which knows the pages'
login redirect), so this module imports nothing of the web and every route
module can import it without a loop.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import HTTPException
from sqlalchemy.exc import OperationalError

log = logging.getLogger("voicewatch.web")


class ApiError(HTTPException):
    """An error with a one-line message and optional structured detail."""

    def __init__(
        self,
        status_code: int,
        error: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=error, headers=headers)
        self.error = error
        self.extra = detail


def error_body(error: str, detail: Any = None) -> dict[str, Any]:
    return {"error": error, "detail": detail}


#: SQLite's result code for "database or disk is full" (SQLITE_FULL).
_SQLITE_FULL = 13
#: PostgreSQL's SQLSTATE ``disk_full``.
_PG_DISK_FULL = "53100"


def is_disk_full(exc: OperationalError) -> bool:
    """True when the database could not write because its disk is full.

    Told apart from "unavailable" because waiting a second will not help:
    someone has to free space. The caller's data was not stored either way.
    """
    orig = exc.orig
    if getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL:
        return True
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return True
    return "database or disk is full" in str(orig)
