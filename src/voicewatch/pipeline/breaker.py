"""A circuit breaker per AI service, shared by every worker through the database.

Why: when a provider is down, every stage that calls it would wait for its
timeout and fail anyway. After ``failure_threshold`` consecutive failures the
circuit *opens* and calls are refused at once. After ``cooldown_ms`` the next
caller is let through as the one *probe* (state ``half_open``); everyone else is
still refused while it is out. The probe's success closes the circuit, its
failure re-opens it for another cool-down.

The state is one row of ``ai_service_health`` per service, so that all worker
processes (on all machines) see the same circuit. Every state change locks that
row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
serialises writers), so two processes that record the threshold-th failure
at once open the circuit once and emit ``circuit_breaker_opened`` once, and two
callers that arrive after the cool-down at once admit one probe.

The common case, a closed circuit, costs ``allow_call`` one primary-key read
and no write lock.

Results that arrive late (a call admitted while the circuit was closed that
ends after it opened) are counted but do not change an open circuit: only the
probe may close it. A probe that never reports (its worker died) is presumed
lost after ``probe_timeout_ms`` and the next caller becomes the new probe.
The probe is not told apart from other callers by a token: whatever result is
recorded while the circuit is half-open decides it.

Events are emitted after the transaction commits, so a rolled-back change
never produces an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update

from voicewatch.pipeline.guard import Emit, insert_if_absent, notify
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import ai_service_health as health_t

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_COOLDOWN_MS = 30_000
#: Longer than any single AI call is allowed to take, so a slow probe is not
#: mistaken for a lost one.
DEFAULT_PROBE_TIMEOUT_MS = 120_000
SERVICE_MAX_LEN = 64  # ai_service_health.service is String(64)


class BreakerState(StrEnum):
    """``ai_service_health.circuit_breaker_state``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class ServiceStatus(StrEnum):
    """``ai_service_health.status``: how the dashboard sums the service up."""

    HEALTHY = "healthy"  # closed, last call succeeded
    DEGRADED = "degraded"  # closed with recent failures, or half-open
    DOWN = "down"  # open


@dataclass(frozen=True)
class ServiceHealth:
    """One ``ai_service_health`` row."""

    service: str
    status: ServiceStatus
    state: BreakerState
    recent_failure_count: int
    last_failure_at: int | None
    last_success_at: int | None
    opened_at: int | None
    updated_at: int


class CircuitOpen(RuntimeError):
    """The circuit of an AI service is open: the call was refused without being made."""

    def __init__(self, service: str, retry_at_ms: int | None) -> None:
        self.service = service
        self.retry_at_ms = retry_at_ms
        when = f" (next probe at {retry_at_ms} ms)" if retry_at_ms is not None else ""
        super().__init__(f"the {service} AI service is unavailable: its circuit is open{when}")


def service_health(engine: Engine, service: str) -> ServiceHealth | None:
    """The stored health of ``service``; ``None`` before its first recorded call."""
    with read_connection(engine) as conn:
        row = conn.execute(select(health_t).where(health_t.c.service == service)).first()
    return _health(row) if row is not None else None


def _health(row: Row[Any]) -> ServiceHealth:
    return ServiceHealth(
        service=row.service,
        status=ServiceStatus(row.status),
        state=BreakerState(row.circuit_breaker_state),
        recent_failure_count=row.recent_failure_count,
        last_failure_at=row.last_failure_at,
        last_success_at=row.last_success_at,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
    )


def all_services(engine: Engine) -> list[ServiceHealth]:
    """The stored health of every AI service that ever recorded a call, by name."""
    with read_connection(engine) as conn:
        rows = conn.execute(select(health_t).order_by(health_t.c.service)).all()
    return [_health(r) for r in rows]


def reset(
    engine: Engine, service: str, actor: str, now_ms: int, emit: Emit | None
) -> tuple[ServiceHealth | None, ServiceHealth | None]:
    """Force the circuit of ``service`` closed (a staff action); returns (before, after).

    Why: staff who know the provider is back should not have to wait for the
    cool-down and a probe. The failure run is cleared as a good probe would;
    ``circuit_breaker_closed`` names ``actor`` in its message. A circuit that
    is already closed, or a service never called, is left as it is (no event).
    """
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(health_t).where(health_t.c.service == service).with_for_update()
        ).first()
        if row is None:
            return None, None
        before = _health(row)
        if before.state is BreakerState.CLOSED:
            return before, before
        conn.execute(
            update(health_t)
            .where(health_t.c.service == service)
            .values(
                circuit_breaker_state=BreakerState.CLOSED.value,
                status=ServiceStatus.HEALTHY.value,
                recent_failure_count=0,
                opened_at=None,
                updated_at=now_ms,
            )
        )
        after_row = conn.execute(select(health_t).where(health_t.c.service == service)).first()
    assert after_row is not None
    notify(
        emit,
        "circuit_breaker_closed",
        error_message=f"{service}: circuit closed by a staff reset ({actor})",
        error_code="staff_reset",
        timestamp=now_ms,
    )
    return before, _health(after_row)


class CircuitBreaker:
    """The circuit of one AI service (``"transcription"``, ``"claims"``, ...).

    The object holds configuration only; all state is in the database, so any
    number of instances in any number of processes act as one breaker.
    ``emit`` receives ``circuit_breaker_opened`` / ``circuit_breaker_closed``;
    ``ai_model`` (e.g. ``"whisper-1"``) and ``pipeline_stage`` go into them.
    """

    def __init__(
        self,
        engine: Engine,
        service: str,
        *,
        emit: Emit | None,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown_ms: int = DEFAULT_COOLDOWN_MS,
        probe_timeout_ms: int = DEFAULT_PROBE_TIMEOUT_MS,
        ai_model: str | None = None,
        pipeline_stage: str | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_ms < 0 or probe_timeout_ms < 0:
            raise ValueError("cooldown_ms and probe_timeout_ms must not be negative")
        if not 0 < len(service) <= SERVICE_MAX_LEN:
            raise ValueError(f"service must be a name of 1 to {SERVICE_MAX_LEN} characters")
        self.engine = engine
        self.service = service
        self.emit = emit
        self.failure_threshold = failure_threshold
        self.cooldown_ms = cooldown_ms
        self.probe_timeout_ms = probe_timeout_ms
        self.ai_model = ai_model
        self.pipeline_stage = pipeline_stage

    # --- reading -------------------------------------------------------------

    def health(self) -> ServiceHealth | None:
        """The stored row, or ``None`` when no call was ever recorded (a closed circuit)."""
        return service_health(self.engine, self.service)

    def state(self) -> BreakerState:
        """The stored state. An open circuit stays ``open`` until a probe is admitted."""
        found = self.health()
        return found.state if found is not None else BreakerState.CLOSED

    # --- admitting calls -------------------------------------------------------

    def allow_call(self, now_ms: int) -> bool:
        """May a call to the service be made now?

        Closed: yes. Open within the cool-down, or half-open with the probe out:
        no. Open after the cool-down (or half-open with a probe presumed lost):
        yes for exactly one caller, which becomes the probe.
        """
        with read_connection(self.engine) as conn:
            row = self._select(conn, lock=False)
        if row is None or row.circuit_breaker_state == BreakerState.CLOSED:
            return True
        if not self._probe_due(row, now_ms):
            return False
        with write_transaction(self.engine) as conn:
            row = self._select(conn, lock=True)
            if row is None or row.circuit_breaker_state == BreakerState.CLOSED:
                return True
            if not self._probe_due(row, now_ms):
                return False  # another caller became the probe first
            self._update(
                conn,
                circuit_breaker_state=BreakerState.HALF_OPEN.value,
                status=ServiceStatus.DEGRADED.value,
                # While half-open, updated_at is when the probe went out: every
                # recorded result leaves half_open, so nothing else moves it.
                updated_at=now_ms,
            )
        return True

    def require(self, now_ms: int) -> None:
        """``allow_call`` that raises ``CircuitOpen`` (with the next probe time) instead."""
        if self.allow_call(now_ms):
            return
        found = self.health()
        retry_at: int | None = None
        if found is not None and found.state is BreakerState.OPEN and found.opened_at is not None:
            retry_at = found.opened_at + self.cooldown_ms
        elif found is not None and found.state is BreakerState.HALF_OPEN:
            retry_at = found.updated_at + self.probe_timeout_ms
        raise CircuitOpen(self.service, retry_at)

    def _probe_due(self, row: Row[Any], now_ms: int) -> bool:
        if row.circuit_breaker_state == BreakerState.OPEN:
            opened_at = row.opened_at if row.opened_at is not None else row.updated_at
            return bool(now_ms - opened_at >= self.cooldown_ms)
        if row.circuit_breaker_state == BreakerState.HALF_OPEN:
            return bool(now_ms - row.updated_at >= self.probe_timeout_ms)
        return True

    # --- recording results --------------------------------------------------------

    def record_success(self, now_ms: int, *, ai_model: str | None = None) -> None:
        """A call succeeded: reset the failure run; a half-open circuit closes."""
        closed = False
        with write_transaction(self.engine) as conn:
            row = self._locked_row(conn, now_ms)
            state = BreakerState(row.circuit_breaker_state)
            if state is BreakerState.OPEN:
                # A late result of a call admitted before the circuit opened:
                # only the probe may close the circuit.
                self._update(conn, last_success_at=now_ms, updated_at=now_ms)
                return
            self._update(
                conn,
                circuit_breaker_state=BreakerState.CLOSED.value,
                status=ServiceStatus.HEALTHY.value,
                recent_failure_count=0,
                last_success_at=now_ms,
                opened_at=None,
                updated_at=now_ms,
            )
            closed = state is BreakerState.HALF_OPEN
        if closed:
            notify(
                self.emit,
                "circuit_breaker_closed",
                pipeline_stage=self.pipeline_stage,
                metadata=self._metadata(ai_model),
                timestamp=now_ms,
            )

    def record_failure(
        self, now_ms: int, error: str | BaseException, *, ai_model: str | None = None
    ) -> None:
        """A call failed: count it; open the circuit at the threshold or on a failed probe."""
        message = _describe(error)
        opened: str | None = None
        with write_transaction(self.engine) as conn:
            row = self._locked_row(conn, now_ms)
            state = BreakerState(row.circuit_breaker_state)
            failures = row.recent_failure_count + 1
            values: dict[str, Any] = {
                "recent_failure_count": failures,
                "last_failure_at": now_ms,
                "updated_at": now_ms,
            }
            if state is BreakerState.HALF_OPEN:
                opened = f"{self.service}: the recovery probe failed: {message}"
            elif state is BreakerState.CLOSED and failures >= self.failure_threshold:
                opened = f"{self.service}: {failures} consecutive failures, the last: {message}"
            if opened is not None:
                values |= {
                    "circuit_breaker_state": BreakerState.OPEN.value,
                    "status": ServiceStatus.DOWN.value,
                    "opened_at": now_ms,
                }
            elif state is BreakerState.CLOSED:
                values["status"] = ServiceStatus.DEGRADED.value
            self._update(conn, **values)
        if opened is not None:
            notify(
                self.emit,
                "circuit_breaker_opened",
                pipeline_stage=self.pipeline_stage,
                error_message=opened,
                error_code="circuit_open",
                metadata=self._metadata(ai_model),
                timestamp=now_ms,
            )

    # --- rows ---------------------------------------------------------------------

    def _select(self, conn: Connection, *, lock: bool) -> Row[Any] | None:
        stmt = select(health_t).where(health_t.c.service == self.service)
        if lock:
            stmt = stmt.with_for_update()
        return conn.execute(stmt).first()

    def _locked_row(self, conn: Connection, now_ms: int) -> Row[Any]:
        insert_if_absent(
            conn,
            health_t,
            {
                "service": self.service,
                "status": ServiceStatus.HEALTHY.value,
                "circuit_breaker_state": BreakerState.CLOSED.value,
                "recent_failure_count": 0,
                "updated_at": now_ms,
            },
            ["service"],
        )
        row = self._select(conn, lock=True)
        assert row is not None  # inserted above, rows are never deleted here
        return row

    def _update(self, conn: Connection, **values: Any) -> None:
        conn.execute(update(health_t).where(health_t.c.service == self.service).values(**values))

    def _metadata(self, ai_model: str | None) -> dict[str, Any] | None:
        model_name = ai_model or self.ai_model
        return {"ai_model": model_name} if model_name else None


def _describe(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return error
