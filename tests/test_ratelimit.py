"""Fixed-window rate limits, on SQLite and PostgreSQL, including two processes at once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from guards import Recorder, run_two
from voicewatch.clock import MINUTE_MS, parse_iso_ms
from voicewatch.pipeline.ratelimit import hit, org_scope, window_start
from voicewatch.store import make_engine, read_connection
from voicewatch.store.tables import rate_limits

W0 = parse_iso_ms("2024-05-01T12:00:00Z")  # a window boundary for every window below
SCOPE = org_scope("org_1")
LIMIT = "ai_calls_per_minute"


def test_windows_are_aligned_to_the_epoch() -> None:
    assert window_start(W0, MINUTE_MS) == W0
    assert window_start(W0 + MINUTE_MS - 1, MINUTE_MS) == W0
    assert window_start(W0 + MINUTE_MS, MINUTE_MS) == W0 + MINUTE_MS
    assert window_start(W0 + 7_500, 5_000) == W0 + 5_000


def test_max_count_calls_pass_then_the_rest_of_the_window_is_refused(
    engine: Engine, recorded: Recorder
) -> None:
    allowed = [hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + i, recorded) for i in range(3)]
    assert allowed == [True, True, True]
    assert recorded.events == []
    assert not hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + 10, recorded)
    # the last millisecond of the window is still the same window
    assert not hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + MINUTE_MS - 1, recorded)


def test_the_next_window_starts_a_fresh_count(engine: Engine) -> None:
    for i in range(3):
        hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + i)
    assert not hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + MINUTE_MS - 1)
    # the boundary belongs to the new window
    assert [hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + MINUTE_MS + i) for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    # a window that skips several periods also starts afresh
    assert hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + 10 * MINUTE_MS)
    with read_connection(engine) as conn:
        row = conn.execute(select(rate_limits)).one()
    assert row.window_start == W0 + 10 * MINUTE_MS and row.current_count == 1


def test_a_window_is_fixed_not_sliding(engine: Engine) -> None:
    # three calls at the end of one window and three at the start of the next all pass
    ends = [hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + MINUTE_MS - 3 + i) for i in range(3)]
    starts = [hit(engine, SCOPE, LIMIT, 3, MINUTE_MS, W0 + MINUTE_MS + i) for i in range(3)]
    assert ends + starts == [True] * 6


def test_the_first_refusal_of_a_window_emits_rate_limit_hit_for_the_org(
    engine: Engine, recorded: Recorder
) -> None:
    for i in range(5):
        hit(engine, SCOPE, LIMIT, 2, MINUTE_MS, W0 + i, recorded)
    assert [e[0] for e in recorded.events] == ["rate_limit_hit"]  # once, not once per refusal
    fields = recorded.events[0][1]
    assert fields["organization_id"] == "org_1"
    assert fields["timestamp"] == W0 + 2
    assert LIMIT in fields["error_message"] and "at most 2 calls" in fields["error_message"]
    # the next window, over the limit again: one more event
    for i in range(3):
        hit(engine, SCOPE, LIMIT, 2, MINUTE_MS, W0 + MINUTE_MS + i, recorded)
    assert [e[0] for e in recorded.events] == ["rate_limit_hit", "rate_limit_hit"]


def test_a_scope_that_is_not_an_organization_emits_without_one(
    engine: Engine, recorded: Recorder
) -> None:
    hit(engine, "service:transcription", "rpm", 1, MINUTE_MS, W0, recorded)
    assert not hit(engine, "service:transcription", "rpm", 1, MINUTE_MS, W0 + 1, recorded)
    assert len(recorded.events) == 1 and "organization_id" not in recorded.events[0][1]


def test_scopes_and_limit_types_count_separately(engine: Engine) -> None:
    assert hit(engine, SCOPE, LIMIT, 1, MINUTE_MS, W0)
    assert not hit(engine, SCOPE, LIMIT, 1, MINUTE_MS, W0 + 1)
    assert hit(engine, org_scope("org_2"), LIMIT, 1, MINUTE_MS, W0 + 1)
    assert hit(engine, SCOPE, "audio_minutes_per_hour", 1, MINUTE_MS, W0 + 1)


def test_without_emit_a_refusal_is_still_a_refusal(engine: Engine) -> None:
    assert hit(engine, SCOPE, LIMIT, 1, MINUTE_MS, W0)
    assert not hit(engine, SCOPE, LIMIT, 1, MINUTE_MS, W0 + 1)


def test_a_limit_of_zero_refuses_everything(engine: Engine, recorded: Recorder) -> None:
    assert not hit(engine, SCOPE, LIMIT, 0, MINUTE_MS, W0, recorded)
    assert not hit(engine, SCOPE, LIMIT, 0, MINUTE_MS, W0 + 1, recorded)
    assert len(recorded.events) == 1


def test_a_lagging_clock_counts_into_the_newer_window(engine: Engine) -> None:
    assert hit(engine, SCOPE, LIMIT, 2, MINUTE_MS, W0 + MINUTE_MS)
    # another worker whose clock is a little behind must not reset the window
    assert hit(engine, SCOPE, LIMIT, 2, MINUTE_MS, W0 + MINUTE_MS - 5)
    assert not hit(engine, SCOPE, LIMIT, 2, MINUTE_MS, W0 + MINUTE_MS + 1)


def test_a_changed_limit_applies_at_once(engine: Engine) -> None:
    assert hit(engine, SCOPE, LIMIT, 1, MINUTE_MS, W0)
    assert not hit(engine, SCOPE, LIMIT, 1, MINUTE_MS, W0 + 1)
    assert hit(engine, SCOPE, LIMIT, 5, MINUTE_MS, W0 + 2)  # raised: 3rd call of 5


def test_bad_limits_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError):
        hit(engine, SCOPE, LIMIT, 1, 0, W0)
    with pytest.raises(ValueError):
        hit(engine, SCOPE, LIMIT, -1, MINUTE_MS, W0)


# --- two processes at once ----------------------------------------------------------------

CALLS = 40
MAX = 30


def _hit_together(url: str, barrier: Any, results: Any) -> None:
    """Child process: 40 calls in one window, starting with the other process."""
    engine = make_engine(url)
    recorded = Recorder()
    barrier.wait()
    allowed = [hit(engine, SCOPE, LIMIT, MAX, MINUTE_MS, W0 + i, recorded) for i in range(CALLS)]
    engine.dispose()
    results.put((sum(allowed), [e[0] for e in recorded.events]))


def test_two_processes_at_once_never_exceed_the_limit(db_url: str, engine: Engine) -> None:
    outputs = run_two(_hit_together, db_url)
    assert sum(allowed for allowed, _ in outputs) == MAX
    assert [t for _, emitted in outputs for t in emitted] == ["rate_limit_hit"]
