"""What can go wrong with an OTLP body, as exceptions the route turns into status codes."""

from __future__ import annotations


class DecodeError(ValueError):
    """The body cannot be decoded as OTLP traces (a 400)."""
