"""The circuit breaker, on SQLite and PostgreSQL: every transition, and two processes at once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from guards import Recorder, run_two
from voicewatch.clock import parse_iso_ms
from voicewatch.pipeline.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    ServiceStatus,
    service_health,
)
from voicewatch.store import make_engine

T0 = parse_iso_ms("2024-05-01T12:00:00Z")
COOLDOWN = 30_000


def make(engine: Engine, emit: Any, **kwargs: Any) -> CircuitBreaker:
    options: dict[str, Any] = {"failure_threshold": 5, "cooldown_ms": COOLDOWN, "emit": emit}
    options.update(kwargs)
    return CircuitBreaker(engine, "transcription", **options)


def open_circuit(breaker: CircuitBreaker, at: int) -> None:
    for i in range(breaker.failure_threshold):
        breaker.record_failure(at + i, "HTTP 503")


# --- closed ---------------------------------------------------------------------


def test_a_new_service_is_closed_and_allows_calls(engine: Engine, recorded: Recorder) -> None:
    breaker = make(engine, recorded)
    assert breaker.state() is BreakerState.CLOSED
    assert breaker.health() is None
    assert breaker.allow_call(T0)
    breaker.require(T0)
    assert recorded.events == []


def test_failures_below_the_threshold_keep_it_closed_but_degraded(
    engine: Engine, recorded: Recorder
) -> None:
    breaker = make(engine, recorded)
    for i in range(4):
        breaker.record_failure(T0 + i, "HTTP 503")
    health = breaker.health()
    assert health is not None
    assert health.state is BreakerState.CLOSED
    assert health.status is ServiceStatus.DEGRADED
    assert health.recent_failure_count == 4
    assert health.last_failure_at == T0 + 3
    assert breaker.allow_call(T0 + 10)
    assert recorded.events == []


def test_a_success_resets_the_run_of_failures(engine: Engine, recorded: Recorder) -> None:
    breaker = make(engine, recorded)
    for i in range(4):
        breaker.record_failure(T0 + i, "HTTP 503")
    breaker.record_success(T0 + 10)
    for i in range(4):
        breaker.record_failure(T0 + 20 + i, "HTTP 503")
    assert breaker.state() is BreakerState.CLOSED
    health = breaker.health()
    assert health is not None and health.recent_failure_count == 4
    assert health.last_success_at == T0 + 10
    assert recorded.events == []
    breaker.record_success(T0 + 30)
    health = breaker.health()
    assert health is not None
    assert health.status is ServiceStatus.HEALTHY and health.recent_failure_count == 0


# --- closed -> open -----------------------------------------------------------------


def test_the_threshold_th_consecutive_failure_opens_it_once(
    engine: Engine, recorded: Recorder
) -> None:
    breaker = make(engine, recorded, ai_model="whisper-1", pipeline_stage="transcription")
    for i in range(4):
        breaker.record_failure(T0 + i, "HTTP 503")
    breaker.record_failure(T0 + 4, TimeoutError("read timed out"))
    assert breaker.state() is BreakerState.OPEN
    health = breaker.health()
    assert health is not None
    assert health.status is ServiceStatus.DOWN and health.opened_at == T0 + 4
    assert recorded.types() == ["circuit_breaker_opened"]
    fields = recorded.events[0][1]
    assert "5 consecutive failures" in fields["error_message"]
    assert "TimeoutError: read timed out" in fields["error_message"]
    assert fields["metadata"] == {"ai_model": "whisper-1"}
    assert fields["pipeline_stage"] == "transcription"
    assert fields["timestamp"] == T0 + 4
    # more (late) failures while open change nothing and recorded nothing
    breaker.record_failure(T0 + 5, "HTTP 503")
    assert recorded.types() == ["circuit_breaker_opened"]
    assert breaker.state() is BreakerState.OPEN


def test_the_threshold_is_configurable(engine: Engine, recorded: Recorder) -> None:
    breaker = make(engine, recorded, failure_threshold=2)
    breaker.record_failure(T0, "boom")
    assert breaker.state() is BreakerState.CLOSED
    breaker.record_failure(T0 + 1, "boom")
    assert breaker.state() is BreakerState.OPEN
    assert recorded.types() == ["circuit_breaker_opened"]


def test_a_failure_passes_its_model_to_the_event(engine: Engine, recorded: Recorder) -> None:
    breaker = make(engine, recorded, failure_threshold=1)
    breaker.record_failure(T0, "boom", ai_model="gpt-4o-mini")
    assert recorded.events[0][1]["metadata"] == {"ai_model": "gpt-4o-mini"}


def test_services_have_separate_circuits(engine: Engine, recorded: Recorder) -> None:
    transcription = make(engine, recorded, failure_threshold=1)
    claims = CircuitBreaker(engine, "claims", emit=recorded, failure_threshold=1)
    transcription.record_failure(T0, "down")
    assert transcription.state() is BreakerState.OPEN
    assert claims.state() is BreakerState.CLOSED
    assert claims.allow_call(T0 + 1)
    assert service_health(engine, "claims") is None
    assert recorded.types() == ["circuit_breaker_opened"]


# --- open: refused during the cool-down ------------------------------------------------


def test_an_open_circuit_refuses_calls_until_the_cooldown_ends(
    engine: Engine, recorded: Recorder
) -> None:
    breaker = make(engine, recorded, failure_threshold=1)
    breaker.record_failure(T0, "down")
    assert not breaker.allow_call(T0)
    assert not breaker.allow_call(T0 + COOLDOWN - 1)
    with pytest.raises(CircuitOpen, match="transcription AI service is unavailable") as info:
        breaker.require(T0 + COOLDOWN - 1)
    assert info.value.retry_at_ms == T0 + COOLDOWN
    assert breaker.state() is BreakerState.OPEN
    assert breaker.allow_call(T0 + COOLDOWN)


def test_a_late_success_does_not_close_an_open_circuit(engine: Engine, recorded: Recorder) -> None:
    breaker = make(engine, recorded, failure_threshold=1)
    breaker.record_failure(T0, "down")
    breaker.record_success(T0 + 1)  # a call admitted before the circuit opened
    assert breaker.state() is BreakerState.OPEN
    assert not breaker.allow_call(T0 + 2)
    health = breaker.health()
    assert health is not None and health.last_success_at == T0 + 1
    assert recorded.types() == ["circuit_breaker_opened"]


# --- half-open: one probe ------------------------------------------------------------------


def test_after_the_cooldown_exactly_one_probe_goes_through(
    engine: Engine, recorded: Recorder
) -> None:
    breaker = make(engine, recorded, failure_threshold=1)
    other_worker = make(engine, recorded, failure_threshold=1)
    breaker.record_failure(T0, "down")
    assert breaker.allow_call(T0 + COOLDOWN)
    assert breaker.state() is BreakerState.HALF_OPEN
    health = breaker.health()
    assert health is not None and health.status is ServiceStatus.DEGRADED
    # while the probe is out, everyone else is refused
    assert not breaker.allow_call(T0 + COOLDOWN)
    assert not other_worker.allow_call(T0 + COOLDOWN + 5_000)
    with pytest.raises(CircuitOpen):
        other_worker.require(T0 + COOLDOWN + 5_000)
    assert recorded.types() == ["circuit_breaker_opened"]


def test_probe_success_closes_the_circuit_and_emits_closed_once(
    engine: Engine, recorded: Recorder
) -> None:
    breaker = make(engine, recorded, ai_model="whisper-1")
    open_circuit(breaker, T0)
    assert breaker.allow_call(T0 + 4 + COOLDOWN)
    breaker.record_success(T0 + 5 + COOLDOWN)
    assert breaker.state() is BreakerState.CLOSED
    health = breaker.health()
    assert health is not None
    assert health.status is ServiceStatus.HEALTHY
    assert health.recent_failure_count == 0 and health.opened_at is None
    assert recorded.types() == ["circuit_breaker_opened", "circuit_breaker_closed"]
    assert recorded.events[1][1]["metadata"] == {"ai_model": "whisper-1"}
    assert recorded.events[1][1]["timestamp"] == T0 + 5 + COOLDOWN
    # closed again: calls flow, further successes recorded nothing
    assert breaker.allow_call(T0 + 6 + COOLDOWN)
    breaker.record_success(T0 + 7 + COOLDOWN)
    assert recorded.types() == ["circuit_breaker_opened", "circuit_breaker_closed"]
    # and it takes a full run of failures to open it again
    for i in range(4):
        breaker.record_failure(T0 + 8 + COOLDOWN + i, "HTTP 503")
    assert breaker.state() is BreakerState.CLOSED


def test_probe_failure_reopens_it_for_a_new_cooldown(engine: Engine, recorded: Recorder) -> None:
    breaker = make(engine, recorded)
    open_circuit(breaker, T0)
    probe_at = T0 + 4 + COOLDOWN
    assert breaker.allow_call(probe_at)
    breaker.record_failure(probe_at + 100, "HTTP 500")
    assert breaker.state() is BreakerState.OPEN
    assert recorded.types() == ["circuit_breaker_opened", "circuit_breaker_opened"]
    assert "probe failed: HTTP 500" in recorded.events[1][1]["error_message"]
    # the cool-down restarts from the failed probe
    assert not breaker.allow_call(probe_at + 100 + COOLDOWN - 1)
    assert breaker.allow_call(probe_at + 100 + COOLDOWN)
    breaker.record_success(probe_at + 200 + COOLDOWN)
    assert recorded.types()[-1] == "circuit_breaker_closed"
    assert recorded.types().count("circuit_breaker_closed") == 1


def test_a_lost_probe_is_replaced_after_the_probe_timeout(
    engine: Engine, recorded: Recorder
) -> None:
    breaker = make(engine, recorded, failure_threshold=1, probe_timeout_ms=60_000)
    breaker.record_failure(T0, "down")
    assert breaker.allow_call(T0 + COOLDOWN)  # this probe's worker dies
    assert not breaker.allow_call(T0 + COOLDOWN + 59_999)
    assert breaker.allow_call(T0 + COOLDOWN + 60_000)  # the replacement probe
    assert not breaker.allow_call(T0 + COOLDOWN + 60_001)
    breaker.record_success(T0 + COOLDOWN + 61_000)
    assert recorded.types() == ["circuit_breaker_opened", "circuit_breaker_closed"]


def test_a_failing_emitter_never_breaks_the_breaker(engine: Engine) -> None:
    def broken_emit(event_type: str, **fields: Any) -> None:
        raise ConnectionError("the harness is down")

    breaker = make(engine, broken_emit, failure_threshold=1)
    breaker.record_failure(T0, "down")
    assert breaker.state() is BreakerState.OPEN
    assert breaker.allow_call(T0 + COOLDOWN)
    breaker.record_success(T0 + COOLDOWN + 1)
    assert breaker.state() is BreakerState.CLOSED


def test_an_oversized_error_is_cut_to_the_event_limit(engine: Engine, recorded: Recorder) -> None:
    breaker = make(engine, recorded, failure_threshold=1)
    breaker.record_failure(T0, "x" * 10_000)
    assert len(recorded.events[0][1]["error_message"]) == 4000


def test_bad_configuration_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(engine, "transcription", emit=None, failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(engine, "", emit=None)
    with pytest.raises(ValueError):
        CircuitBreaker(engine, "transcription", emit=None, cooldown_ms=-1)


# --- two processes at once -----------------------------------------------------------------

ROUNDS = 15


def _fail_together(url: str, barrier: Any, threshold: int, results: Any) -> None:
    """Child process: in each round, record ``threshold`` failures on a fresh service."""
    engine = make_engine(url)
    recorded = Recorder()
    for round_no in range(ROUNDS):
        breaker = CircuitBreaker(
            engine, f"svc-{round_no}", emit=recorded, failure_threshold=threshold
        )
        barrier.wait()
        for i in range(threshold):
            breaker.record_failure(T0 + i, "HTTP 503")
    engine.dispose()
    results.put(recorded.types())


def _probe_together(url: str, barrier: Any, results: Any) -> None:
    """Child process: in each round, ask for a call on an open circuit after its cool-down."""
    engine = make_engine(url)
    allowed = []
    for round_no in range(ROUNDS):
        breaker = CircuitBreaker(engine, f"svc-{round_no}", emit=None, failure_threshold=1)
        barrier.wait()
        allowed.append(breaker.allow_call(T0 + COOLDOWN))
    engine.dispose()
    results.put(allowed)


@pytest.mark.parametrize("threshold", [1, 3])
def test_two_processes_failing_at_once_open_the_circuit_once(
    db_url: str, engine: Engine, threshold: int
) -> None:
    outputs = run_two(_fail_together, db_url, threshold)
    opened = [t for out in outputs for t in out]
    assert opened.count("circuit_breaker_opened") == ROUNDS  # one per service, not two
    for round_no in range(ROUNDS):
        health = service_health(engine, f"svc-{round_no}")
        assert health is not None
        assert health.state is BreakerState.OPEN
        assert health.recent_failure_count == 2 * threshold  # no failure lost


def test_two_processes_after_the_cooldown_admit_one_probe(db_url: str, engine: Engine) -> None:
    for round_no in range(ROUNDS):
        CircuitBreaker(engine, f"svc-{round_no}", emit=None, failure_threshold=1).record_failure(
            T0, "down"
        )
    outputs = run_two(_probe_together, db_url)
    for round_no in range(ROUNDS):
        admitted = [out[round_no] for out in outputs]
        assert sorted(admitted) == [False, True], f"round {round_no}: {admitted}"
