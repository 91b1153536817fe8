"""The emitter's two destinations: a database (``events.log_events``) and a server over HTTP.

A sink writes one batch and says what the store did with it (:class:`Outcome`), or
raises :class:`Transient` (keep the batch, try again later) or :class:`TooLarge` (send
it in halves). Any other exception means the batch itself is at fault. Sinks never
retry: the writer thread does (:mod:`voicewatch.emitter.writer`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from voicewatch.emitter.log import first_line

DEFAULT_MAX_REQUEST_BYTES = 1 << 20
EVENTS_PATH = "/api/v1/events"


class Transient(Exception):
    """The store could not take the batch right now: keep it and try again later."""


class TooLarge(Exception):
    """The store refused the batch for its size: send it in halves."""


@dataclass
class Outcome:
    """What the store did with one batch."""

    written: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, why)


def _is_transient_db_error(exc: BaseException) -> bool:
    """Errors of the database or the way to it, as opposed to errors caused by the batch.

    Every DBAPI error but bad data (``DataError``, ``IntegrityError``) is taken
    as transient: a locked SQLite file, a stopped server, a dropped connection,
    even a missing table (the schema may be migrated in a moment). Keeping and
    retrying such a batch costs nothing; dropping it would lose events.
    """
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return False
    return isinstance(
        exc,
        sa_exc.DBAPIError | sa_exc.DisconnectionError | sa_exc.TimeoutError | OSError,
    )


class DatabaseSink:
    """Writes batches with ``events.log_events``; the engine is made on first use."""

    def __init__(
        self, url: str | None, engine: Any, *, migrate: bool, busy_timeout_ms: int
    ) -> None:
        self._url = url
        self._engine = engine
        self._own_engine = engine is None
        self._migrate_pending = migrate
        self._busy_timeout_ms = busy_timeout_ms
        self._failing = False
        self.label = safe_url(url) if url is not None else safe_url(str(engine.url))

    def _ready_engine(self) -> Any:
        if self._engine is None:
            from voicewatch.store import make_engine

            try:
                self._engine = make_engine(str(self._url), busy_timeout_ms=self._busy_timeout_ms)
            except Exception as exc:  # a bad URL or a missing driver: keep events, say so
                raise Transient(f"cannot open the database: {first_line(exc)}") from exc
        if self._migrate_pending:
            from voicewatch.store import migrate

            try:
                migrate(self._engine)
            except Exception as exc:
                raise Transient(f"cannot migrate the database: {first_line(exc)}") from exc
            self._migrate_pending = False
        return self._engine

    def write(self, batch: list[Any]) -> Outcome:
        from voicewatch.events import log_events

        engine = self._ready_engine()
        try:
            if self._failing:
                # While the store is down, a connection attempt is enough to find
                # out; validating a whole batch each time would only burn CPU
                # (and hold the GIL that emitting threads need).
                with engine.connect():
                    pass
            result = log_events(engine, batch)
        except Exception as exc:
            if _is_transient_db_error(exc):
                self._failing = True
                raise Transient(first_line(exc)) from exc
            raise
        self._failing = False
        return Outcome(
            result.accepted, result.duplicates, [(r.index, r.error) for r in result.rejected]
        )

    def reset_after_fork(self) -> None:
        """A forked child must not use the parent's pooled connections."""
        if self._engine is not None:
            if self._own_engine:
                self._engine = None
            else:
                self._engine.dispose(close=False)

    def close(self) -> None:
        if self._engine is not None and self._own_engine:
            self._engine.dispose()
            self._engine = None


class HttpSink:
    """POSTs batches as a JSON list to ``{endpoint}/api/v1/events`` with a bearer token."""

    def __init__(self, endpoint: str, token: str, *, timeout: float, max_bytes: int) -> None:
        self.url = endpoint.rstrip("/") + EVENTS_PATH
        self.label = endpoint.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._client: Any = None

    def _ready_client(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                timeout=self._timeout,
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Content-Type": "application/json",
                    "User-Agent": "voicewatch-emitter",
                },
            )
        return self._client

    def write(self, batch: list[Any]) -> Outcome:
        import httpx

        outcome = Outcome()
        try:
            body = json.dumps(batch, separators=(",", ":")).encode()
            sent = list(range(len(batch)))
        except (TypeError, ValueError, RecursionError):
            # Some event holds a value JSON cannot carry; it could never be
            # stored, so it is rejected here and the others still go.
            parts: list[str] = []
            sent = []
            for index, item in enumerate(batch):
                try:
                    parts.append(json.dumps(item, separators=(",", ":")))
                    sent.append(index)
                except (TypeError, ValueError, RecursionError) as exc:
                    outcome.rejected.append((index, f"not JSON: {first_line(exc)}"))
            body = ("[" + ",".join(parts) + "]").encode()
        if not sent:
            return outcome
        if len(body) > self._max_bytes and len(batch) > 1:
            raise TooLarge(f"{len(body)} bytes")
        try:
            client = self._ready_client()
            response = client.post(self.url, content=body)
        except httpx.TransportError as exc:
            raise Transient(first_line(exc)) from exc
        except Exception as exc:  # e.g. an invalid URL: a configuration to fix, not data
            raise Transient(first_line(exc)) from exc
        status = response.status_code
        if status == 413:
            raise TooLarge(f"HTTP 413 for {len(body)} bytes")
        if status in (401, 403):
            raise Transient(f"HTTP {status}: the server refused the token")
        if status == 400:
            raise ValueError(f"HTTP 400: {response.text[:300]}")
        if status not in (200, 422):
            raise Transient(f"HTTP {status}: {response.text[:200]}")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status == 422:
            error = str(answer.get("error") or "rejected")
            reasons = {
                r.get("index"): str(r.get("error"))
                for r in answer.get("rejected") or []
                if isinstance(r, dict)
            }
            outcome.rejected.extend((sent[i], reasons.get(i, error)) for i in range(len(sent)))
            return outcome
        outcome.written = int(answer.get("accepted", len(sent)) or 0)
        outcome.duplicates = int(answer.get("duplicates", 0) or 0)
        for r in answer.get("rejected") or []:
            if isinstance(r, dict) and isinstance(r.get("index"), int) and r["index"] < len(sent):
                outcome.rejected.append((sent[r["index"]], str(r.get("error"))))
        return outcome

    def reset_after_fork(self) -> None:
        self._client = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def safe_url(url: str) -> str:
    """The URL for logs, with any password masked."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
