"""Bounded gzip decompression: a gzip bomb stops at the cap, never in memory.

A 1 MB gzip body can inflate to 1 GB. ``gunzip_limited`` inflates at most
``max_bytes + 1`` bytes (zlib's ``max_length``), so the work and the memory
are bounded by the cap whatever the body claims; going past it raises
``TooLarge``. Concatenated gzip members (allowed by RFC 1952) are inflated in
turn under the same cap.
"""

from __future__ import annotations

import zlib


class TooLarge(ValueError):
    """The decompressed body is larger than allowed."""


class BadGzip(ValueError):
    """The body is not valid gzip."""


def gunzip_limited(data: bytes, max_bytes: int) -> bytes:
    """The inflated ``data``; ``TooLarge`` past ``max_bytes``, ``BadGzip`` when corrupt."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, max_bytes + 1 - len(out))
            while len(out) <= max_bytes and inflater.unconsumed_tail:
                out += inflater.decompress(inflater.unconsumed_tail, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise BadGzip(f"the body is not valid gzip: {exc}") from exc
        if len(out) > max_bytes:
            raise TooLarge(f"the decompressed body is larger than {max_bytes} bytes")
        if not inflater.eof:
            raise BadGzip("the gzip body is truncated")
        rest = inflater.unused_data
    return bytes(out)
