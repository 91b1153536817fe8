"""UTC time, in epoch milliseconds, and the windows built on it.

Every time voicewatch stores is UTC epoch ms; hour windows are the UTC string
``YYYY-MM-DD-HH``. Nothing here (or anywhere) calls a local-time function, so
the machine's TZ never moves an event into another window.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    """The current time as UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def minute_start(ts_ms: int) -> int:
    """Start (epoch ms) of the UTC minute holding ``ts_ms``."""
    return ts_ms - ts_ms % MINUTE_MS


def hour_start(ts_ms: int) -> int:
    """Start (epoch ms) of the UTC hour holding ``ts_ms``."""
    return ts_ms - ts_ms % HOUR_MS


def day_start(ts_ms: int) -> int:
    """Start (epoch ms) of the UTC day holding ``ts_ms``."""
    return ts_ms - ts_ms % DAY_MS


def hour_window(ts_ms: int) -> str:
    """The seed's hour window key, ``YYYY-MM-DD-HH`` in UTC."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d-%H")


def to_datetime(ts_ms: int) -> datetime:
    """An aware UTC datetime for ``ts_ms``."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def to_iso(ts_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``."""
    return to_datetime(ts_ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def parse_iso_ms(text: str) -> int:
    """Parse ISO 8601 (``Z`` or offset; a naive time is taken as UTC) to epoch ms."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)
