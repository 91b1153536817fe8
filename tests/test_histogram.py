"""The mergeable latency histogram (histogram.py).

The exact quantile here is the seed's rule, ``sorted(values)[floor(n * q)]``,
computed in the test; the histogram must stay within 5% of it.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicewatch.histogram import GAMMA, RELATIVE_ACCURACY, LatencyHistogram


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.floor(len(ordered) * q))]


QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


def test_accuracy_is_five_percent() -> None:
    assert RELATIVE_ACCURACY == 0.05
    assert pytest.approx(1.05 / 0.95) == GAMMA


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_within_five_percent_of_exact(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(9, 1.2) for _ in range(5000)]  # ~8 s median, long tail
    values += [rng.uniform(1, 100) for _ in range(500)]
    hist = LatencyHistogram.of(values)
    assert hist.count == len(values)
    for q in QUANTILES:
        want = exact(values, q)
        assert abs(hist.quantile(q) - want) <= RELATIVE_ACCURACY * want, q


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.001, max_value=1e8), min_size=1, max_size=300),
    st.sampled_from(QUANTILES),
)
def test_any_values_any_quantile(values: list[float], q: float) -> None:
    want = exact(values, q)
    assert abs(LatencyHistogram.of(values).quantile(q) - want) <= RELATIVE_ACCURACY * want * (
        1 + 1e-9
    )


def test_bucket_edges_and_integers() -> None:
    values = [GAMMA**k for k in range(-5, 60)] + list(range(1, 2000))
    hist = LatencyHistogram.of(values)
    for q in QUANTILES:
        want = exact(values, q)
        assert abs(hist.quantile(q) - want) <= RELATIVE_ACCURACY * want * (1 + 1e-9)


def test_merge_equals_the_histogram_of_all_values() -> None:
    rng = random.Random(3)
    parts = [[rng.expovariate(1 / 5000) for _ in range(rng.randint(0, 400))] for _ in range(24)]
    merged = LatencyHistogram()
    for part in parts:
        merged.merge(LatencyHistogram.of(part))
    everything = [v for part in parts for v in part]
    assert merged == LatencyHistogram.of(everything)
    assert merged.count == len(everything)
    reverse = LatencyHistogram()
    for part in reversed(parts):
        reverse.merge(LatencyHistogram.of(part))
    assert reverse == merged
    assert merged.quantile(0.95) == pytest.approx(exact(everything, 0.95), rel=0.05)


def test_json_round_trip_is_small_and_exact() -> None:
    rng = random.Random(4)
    values = [rng.uniform(1, 3_600_000) for _ in range(10_000)] + [0.0, 0.0]
    hist = LatencyHistogram.of(values)
    data = json.loads(json.dumps(hist.to_dict()))
    back = LatencyHistogram.from_dict(data)
    assert back == hist and back.count == hist.count == len(values)
    # 1 ms .. 1 h is ~6.6 decades: ~150 buckets, whatever the number of values
    assert len(data["counts"]) <= 160
    assert len(json.dumps(data)) < 2_000


def test_zero_empty_and_tiny_values() -> None:
    assert LatencyHistogram().quantile(0.95) == 0
    assert LatencyHistogram.from_dict(None).count == 0
    assert LatencyHistogram.from_dict({}).quantile(0.5) == 0
    hist = LatencyHistogram.of([0.0] * 96 + [0.0000001] * 1 + [1000.0] * 3)
    assert hist.zero == 97
    assert hist.quantile(0.95) == 0  # rank 95 is a zero
    assert hist.quantile(0.97) == pytest.approx(1000, rel=0.05)  # rank 97
    empty = LatencyHistogram.from_dict(LatencyHistogram().to_dict())
    assert empty == LatencyHistogram() and empty.count == 0


def test_other_accuracy_is_refused() -> None:
    with pytest.raises(ValueError, match="accuracy"):
        LatencyHistogram.from_dict({"a": 0.01, "zero": 0, "start": 0, "counts": [1]})
