"""A small mergeable latency histogram with a bounded relative error.

Why: an hourly snapshot can compute its p95 exactly from the hour's values, but
a day or a 30-day range cannot (the raw events may be gone, and fetching a
month of latencies for one chart would be far too slow). Percentiles over
periods therefore come from histograms that are stored with every snapshot
and added together.

How: DDSketch-style log-spaced buckets. With ``gamma = (1 + a) / (1 - a)`` a
positive value ``x`` (milliseconds) falls in bucket ``i = ceil(log(x) / log(gamma))``,
which holds the values in ``(gamma**(i-1), gamma**i]``; reporting the bucket as
``2 * gamma**i / (gamma + 1)`` is within a relative error ``a`` of every value
in it. With ``a = 0.05`` one decade needs about 23 buckets, so a histogram of
latencies from 1 ms to 1 hour holds at most ~150 counts. Values below
``MIN_TRACKED_MS`` (and zero) are counted in a separate zero bucket reported as 0.

Merging two histograms adds their bucket counts, so the merged histogram is
exactly the one that all the values together would have built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: The relative error bound of every reported quantile (5%).
RELATIVE_ACCURACY = 0.05
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
#: 1 / log(GAMMA): a bucket index is ceil(log(value) * INV_LOG_GAMMA) (also computed in SQL).
INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
#: Values (ms) below this (one microsecond) are counted as zero.
MIN_TRACKED_MS = 1e-3
#: The index that stands for the zero bucket where an index is passed around (SQL).
ZERO_BUCKET = -(2**31)


def bucket_index(value: float) -> int:
    """The bucket of a positive ``value`` (ms): ``ceil(log(value) / log(GAMMA))``."""
    return math.ceil(math.log(value) * INV_LOG_GAMMA)


def index_of(value: float) -> int:
    """``bucket_index(value)``, or ``ZERO_BUCKET`` for values below ``MIN_TRACKED_MS`` (and NaN)."""
    return bucket_index(value) if value >= MIN_TRACKED_MS else ZERO_BUCKET


def bucket_value(index: int) -> float:
    """The value (ms) reported for bucket ``index``: within ``RELATIVE_ACCURACY`` of its values."""
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


class LatencyHistogram:
    """Counts of latencies (ms) in log-spaced buckets; add values, merge, read quantiles."""

    __slots__ = ("_bins", "count", "zero")

    def __init__(self) -> None:
        self._bins: dict[int, int] = {}
        self.zero = 0
        self.count = 0

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencyHistogram:
        """A histogram of ``values`` (ms)."""
        hist = cls()
        for value in values:
            hist.add(value)
        return hist

    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` (ms) ``count`` times."""
        self.add_bucket(index_of(value), count)

    def add_bucket(self, index: int, count: int = 1) -> None:
        """Count ``count`` values already bucketed as ``index`` (``ZERO_BUCKET``: zeros)."""
        if count <= 0:
            return
        if index == ZERO_BUCKET:
            self.zero += count
        else:
            self._bins[index] = self._bins.get(index, 0) + count
        self.count += count

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """Add ``other``'s counts to this histogram (in place); returns ``self``."""
        for index, count in other._bins.items():
            self._bins[index] = self._bins.get(index, 0) + count
        self.zero += other.zero
        self.count += other.count
        return self

    def quantile(self, q: float) -> float:
        """The value at rank ``floor(count * q)`` of the sorted values, as the seed's p95.

        Within ``RELATIVE_ACCURACY`` of the exact ``sorted(values)[floor(n * q)]``;
        0 when the histogram is empty.
        """
        if self.count == 0:
            return 0.0
        rank = min(self.count - 1, max(0, math.floor(self.count * q)))
        if rank < self.zero:
            return 0.0
        seen = self.zero
        for index in sorted(self._bins):
            seen += self._bins[index]
            if seen > rank:
                return bucket_value(index)
        return bucket_value(max(self._bins))  # pragma: no cover - counts always add up

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-ready form: dense counts from the lowest used bucket."""
        if not self._bins:
            return {
                "a": RELATIVE_ACCURACY,
                "n": self.count,
                "zero": self.zero,
                "start": 0,
                "counts": [],
            }
        low, high = min(self._bins), max(self._bins)
        return {
            "a": RELATIVE_ACCURACY,
            "n": self.count,
            "zero": self.zero,
            "start": low,
            "counts": [self._bins.get(i, 0) for i in range(low, high + 1)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LatencyHistogram:
        """Read ``to_dict``'s form back; an empty or missing dict gives an empty histogram."""
        hist = cls()
        if not data:
            return hist
        if abs(float(data.get("a", RELATIVE_ACCURACY)) - RELATIVE_ACCURACY) > 1e-12:
            raise ValueError(f"histogram accuracy {data.get('a')} != {RELATIVE_ACCURACY}")
        start = int(data.get("start", 0))
        for offset, count in enumerate(data.get("counts", [])):
            if count:
                hist._bins[start + offset] = int(count)
        hist.zero = int(data.get("zero", 0))
        hist.count = hist.zero + sum(hist._bins.values())
        return hist

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self._bins == other._bins and self.zero == other.zero

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, zero={self.zero}, buckets={len(self._bins)})"
