"""What the data pages share: the page size, the 422 for a bad filter, UTC day ranges."""

from __future__ import annotations

from datetime import UTC, date, datetime

from voicewatch.clock import DAY_MS

PAGE_SIZE = 50


class BadFilter(ValueError):
    """A filter value the page cannot use (answered with 422)."""


def day_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """``YYYY-MM-DD`` dates (UTC, both inclusive) as [since, until) epoch ms."""

    def parse(text: str) -> int:
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise BadFilter(f"not a date (YYYY-MM-DD): {text[:20]}") from exc
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)

    since = parse(start) if start else None
    until = parse(end) + DAY_MS if end else None
    return since, until
