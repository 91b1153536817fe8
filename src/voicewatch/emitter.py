"""The SDK the pipeline calls: non-blocking ``emit()``, ``stage()`` timing, never raises.

Monitoring must never fail or slow the pipeline it watches, so this module
splits the work in two:

* ``Monitor.emit`` only builds a dict and appends it to an in-memory
  ``collections.deque`` (append and popleft are atomic, and far cheaper than a
  ``queue.Queue`` with its lock and condition). On that path it takes no lock
  and does no I/O, and it catches every exception: a caller never waits on
  the store and never sees an error from it.
* One daemon writer thread per monitor drains the deque in batches (up to
  ``batch_size`` events, or whatever arrived within ``flush_interval``) and
  writes each batch in one go: ``voicewatch.events.log_events`` (one atomic
  transaction, idempotent by ``event_id``) or an HTTP POST to
  ``{endpoint}/api/v1/events``. Because a batch is idempotent, the writer can
  simply send it again after any failure.

When the store is down the writer keeps its batch and retries with capped
exponential backoff, logging each failure (like Flower's reconnect loops) and
counting it. Meanwhile the deque fills; once it holds ``max_queue`` events,
``emit`` appends the event as a JSON line to a *spill file* instead of
dropping it. When the store answers again the writer renames the spill file
(so emitters start a new one and never write into a file being read), replays
it and deletes it. A spill file left by a process that died is claimed and
replayed by the next monitor that writes to the same destination. An event is
dropped only when spilling itself fails, and every drop is counted.

An exit hook closes every open monitor (flushing for up to ``close_timeout``
seconds, then spilling what is left), and a forked child gets its own ids,
queue, connections and writer thread.

Counters (``Monitor.stats``) say what happened to every event: emitted,
written, duplicates, rejected (the store said the event is invalid; never
retried), spilled, dropped, internal errors and retries.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import json
import logging
import os
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from voicewatch import model
from voicewatch.clock import now_ms

log = logging.getLogger("voicewatch.emitter")

DEFAULT_MAX_QUEUE = 100_000
DEFAULT_FLUSH_INTERVAL_S = 0.05
DEFAULT_RETRY_DELAY_S = 0.05
DEFAULT_RETRY_BACKOFF = 2.0
DEFAULT_MAX_RETRY_DELAY_S = 2.0
DEFAULT_MAX_SPILL_BYTES = 1 << 30
DEFAULT_MAX_REQUEST_BYTES = 1 << 20
EVENTS_PATH = "/api/v1/events"

_SPILL_SUFFIX = ".spill.jsonl"
_REPLAY_SUFFIX = ".replay.jsonl"


# --- the two destinations ------------------------------------------------------------


class _Transient(Exception):
    """The store could not take the batch right now: keep it and try again later."""


class _TooLarge(Exception):
    """The store refused the batch for its size: send it in halves."""


@dataclass
class _Outcome:
    """What the store did with one batch."""

    written: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, why)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


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


class _DatabaseSink:
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
        self.label = _safe_url(url) if url is not None else _safe_url(str(engine.url))

    def _ready_engine(self) -> Any:
        if self._engine is None:
            from voicewatch.store import make_engine

            try:
                self._engine = make_engine(str(self._url), busy_timeout_ms=self._busy_timeout_ms)
            except Exception as exc:  # a bad URL or a missing driver: keep events, say so
                raise _Transient(f"cannot open the database: {_first_line(exc)}") from exc
        if self._migrate_pending:
            from voicewatch.store import migrate

            try:
                migrate(self._engine)
            except Exception as exc:
                raise _Transient(f"cannot migrate the database: {_first_line(exc)}") from exc
            self._migrate_pending = False
        return self._engine

    def write(self, batch: list[Any]) -> _Outcome:
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
                raise _Transient(_first_line(exc)) from exc
            raise
        self._failing = False
        return _Outcome(
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


class _HttpSink:
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

    def write(self, batch: list[Any]) -> _Outcome:
        import httpx

        outcome = _Outcome()
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
                    outcome.rejected.append((index, f"not JSON: {_first_line(exc)}"))
            body = ("[" + ",".join(parts) + "]").encode()
        if not sent:
            return outcome
        if len(body) > self._max_bytes and len(batch) > 1:
            raise _TooLarge(f"{len(body)} bytes")
        try:
            client = self._ready_client()
            response = client.post(self.url, content=body)
        except httpx.TransportError as exc:
            raise _Transient(_first_line(exc)) from exc
        except Exception as exc:  # e.g. an invalid URL: a configuration to fix, not data
            raise _Transient(_first_line(exc)) from exc
        status = response.status_code
        if status == 413:
            raise _TooLarge(f"HTTP 413 for {len(body)} bytes")
        if status in (401, 403):
            raise _Transient(f"HTTP {status}: the server refused the token")
        if status == 400:
            raise ValueError(f"HTTP 400: {response.text[:300]}")
        if status not in (200, 422):
            raise _Transient(f"HTTP {status}: {response.text[:200]}")
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


def _safe_url(url: str) -> str:
    """The URL for logs, with any password masked."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _destination_key(database_url: str | None, engine: Any, endpoint: str | None) -> str:
    """A stable name for the destination, so spill files are only replayed into it."""
    if endpoint:
        where = "http:" + endpoint.rstrip("/")
    elif engine is not None:
        where = "db:" + str(engine.url)
    else:
        where = "db:" + str(database_url)
        if where.startswith("db:sqlite:///") and ":memory:" not in where:
            where = "db:sqlite:///" + os.path.abspath(where.removeprefix("db:sqlite:///"))
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def default_spill_root() -> Path:
    """``$XDG_CACHE_HOME/voicewatch/spill`` (``~/.cache/...``), else the temp directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(cache) / "voicewatch" / "spill"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "voicewatch-spill"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # cannot tell cheaply: leave the file to its owner
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _log_sparsely(count: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th, ... occurrence: a storm cannot flood the log."""
    return count & (count - 1) == 0


# --- the monitor ------------------------------------------------------------------------


_LIVE: weakref.WeakSet[Monitor] = weakref.WeakSet()


@dataclass
class _Replay:
    """A claimed spill file being written to the store, ``batch_size`` lines at a time."""

    path: Path
    own_events: int  # events this monitor spilled into it (0 for another process's file)
    size: int
    handle: IO[str] | None = None
    finished: bool = False


class Monitor:
    """Sends pipeline events to a voicewatch store without ever blocking or failing the caller.

    Give either ``database_url`` (writes straight into the database, SQLite or
    PostgreSQL) or ``endpoint`` and ``token`` (an ingest token for a voicewatch
    server's ``POST /api/v1/events``).

    :param database_url: SQLAlchemy-style URL of the store (``sqlite:///...``,
        ``postgresql://...``).
    :param endpoint: base URL of a voicewatch server, e.g. ``http://host:8000``.
    :param token: API token with the ``ingest`` (or ``staff``) scope.
    :param engine: an existing SQLAlchemy engine instead of ``database_url``.
    :param max_queue: events held in memory before ``emit`` spills to disk.
    :param batch_size: most events per write (the store's batch limit is 1000).
    :param flush_interval: seconds the writer waits for a batch to fill.
    :param retry_delay: first backoff, seconds; multiplied by ``retry_backoff``
        after each failure up to ``max_retry_delay``.
    :param spill_dir: where spill files go (a sub-directory per destination);
        default ``~/.cache/voicewatch/spill``.
    :param max_spill_bytes: disk budget of this monitor's spill files; beyond
        it events are dropped (and counted).
    :param clock: epoch-ms clock for timestamps (tests pass a fake one).
    :param timer: monotonic seconds, for stage durations.
    :param migrate: create or upgrade the schema before the first write;
        default: yes for SQLite (the embedded store), no for PostgreSQL.
    :param close_timeout: seconds the exit hook waits to flush.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        engine: Any = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        batch_size: int = model.MAX_BATCH_EVENTS,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
        retry_delay: float = DEFAULT_RETRY_DELAY_S,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY_S,
        spill_dir: str | os.PathLike[str] | None = None,
        max_spill_bytes: int = DEFAULT_MAX_SPILL_BYTES,
        clock: Callable[[], int] = now_ms,
        timer: Callable[[], float] = time.perf_counter,
        migrate: bool | None = None,
        busy_timeout_ms: int = 2000,
        http_timeout: float = 10.0,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        close_timeout: float = 5.0,
    ) -> None:
        destinations = sum(x is not None for x in (database_url, endpoint, engine))
        if destinations != 1:
            raise ValueError("give exactly one of database_url, endpoint or engine")
        if endpoint is not None and not token:
            raise ValueError("endpoint mode needs an API token (token=...)")
        self._sink: _DatabaseSink | _HttpSink
        if endpoint is not None:
            self._sink = _HttpSink(
                endpoint, str(token), timeout=http_timeout, max_bytes=max_request_bytes
            )
        else:
            url = database_url if database_url is not None else str(engine.url)
            if migrate is None:
                migrate = url.startswith("sqlite")
            self._sink = _DatabaseSink(
                database_url, engine, migrate=migrate, busy_timeout_ms=busy_timeout_ms
            )
        self.destination = self._sink.label
        self._batch_size = max(1, min(int(batch_size), model.MAX_BATCH_EVENTS))
        self._max_queue = max(1, int(max_queue))
        self._flush_interval = float(flush_interval)
        self._retry_delay = float(retry_delay)
        self._retry_backoff = max(1.0, float(retry_backoff))
        self._max_retry_delay = float(max_retry_delay)
        self._max_spill_bytes = int(max_spill_bytes)
        self._clock = clock
        self._timer = timer
        self._close_timeout = close_timeout
        root = Path(spill_dir) if spill_dir is not None else default_spill_root()
        self.spill_path = root / _destination_key(database_url, engine, endpoint)
        self._closed = False
        self._close_result = False
        self._close_lock = threading.Lock()
        self._init_runtime()
        try:
            self._claim_orphans()
        except Exception:
            self._writer_errors += 1
            log.warning("voicewatch: could not look for old spill files", exc_info=True)
        _LIVE.add(self)
        self._start_writer()

    def _init_runtime(self) -> None:
        """State that is per process: also rebuilt in a forked child."""
        # The hot path reads these few attributes only.
        self._queue: deque[dict[str, Any]] = deque()
        self._capacity = 0 if self._closed else self._max_queue
        self._id_prefix = str(uuid.uuid4())[:24]  # a random UUID4's first 74 bits
        self._ids = itertools.count()
        self._wake = threading.Event()
        # Writer side.
        self._pop_lock = threading.Lock()
        self._popped = 0
        self._progress = threading.Condition()
        self._handled = 0  # popped events that were written, rejected or spilled
        self._spill_done = 0  # own spilled events replayed from disk
        self._files_claimed = 0  # spill files taken for replay (own and orphans)
        self._files_done = 0
        self._flush_waiters = 0
        self._closing = False
        self._abandon = threading.Event()
        self._written = 0
        self._duplicates = 0
        self._rejected = 0
        self._retries = 0
        self._replayed = 0
        self._writer_errors = 0
        self._replay: _Replay | None = None
        self._replay_queue: list[_Replay] = []
        # Emit side, slow paths only.
        self._instance = uuid.uuid4().hex[:12]
        self._spill_lock = threading.Lock()
        self._spill_handle: IO[str] | None = None
        self._spill_dirty = False
        self._spill_file: Path | None = None
        self._spill_file_events = 0
        self._spill_seq = 0
        self._spill_bytes = 0
        self._spilled_by_emit = 0
        self._dropped_by_emit = 0
        self._spilled_total = 0  # own events ever written to spill files
        self._dropped = 0
        self._emit_errors = 0
        self._emit_rejected = 0
        self._thread: threading.Thread | None = None

    def _start_writer(self) -> None:
        if self._closed:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"voicewatch-emitter-{self._instance}", daemon=True
        )
        self._thread.start()

    # --- the hot path ------------------------------------------------------------------

    def emit(self, event_type: str | None = None, /, *args: Any, **fields: Any) -> str | None:
        """Queue one event and return its ``event_id`` at once (``None`` if it was unusable).

        ``fields`` are the event's fields (``artifact_id``, ``organization_id``,
        ``duration_ms``, ``metadata={...}``, ...). ``event_id`` defaults to a
        new unique id and ``timestamp`` to now (epoch ms, UTC). Nothing is
        checked here: the store validates, and counts what it rejects.
        Never raises and never waits for I/O.
        """
        try:
            if args:
                raise TypeError("emit() takes the event type as its only positional argument")
            if event_type is not None or "event_type" not in fields:
                fields["event_type"] = event_type
            if fields.get("event_id") is None:
                # A random per-monitor prefix plus a counter: unique like a uuid4
                # at a tenth of its cost (os.urandom per call is a system call).
                fields["event_id"] = self._id_prefix + format(next(self._ids), "012x")
            if fields.get("timestamp") is None:
                fields["timestamp"] = self._clock()
            meta = fields.get("metadata")
            if meta is not None:
                # Our own copy: the caller may keep changing theirs after emit().
                fields["metadata"] = meta.copy() if type(meta) is dict else _as_dict(meta)
            queue = self._queue
            if len(queue) < self._capacity:
                queue.append(fields)
                if len(queue) % self._batch_size == 0:
                    self._wake.set()
            else:
                self._spill_event(fields)
            return fields["event_id"]  # type: ignore[no-any-return]
        except Exception:
            self._emit_failed()
            return None

    def _emit_failed(self) -> None:
        try:
            with self._spill_lock:
                self._emit_errors += 1
                count = self._emit_errors
            if _log_sparsely(count):
                log.warning(
                    "voicewatch: emit() could not build an event (%d so far)", count, exc_info=True
                )
        except Exception:
            pass

    # --- spilling (emit's slow path when the queue is full) -------------------------------

    def _spill_event(self, event: dict[str, Any]) -> None:
        try:
            line = json.dumps(event, separators=(",", ":")) + "\n"
        except (TypeError, ValueError, RecursionError) as exc:
            # Not JSON: the store could not hold it either, so it counts as rejected.
            with self._spill_lock:
                self._emit_rejected += 1
                count = self._emit_rejected
            if _log_sparsely(count):
                log.warning("voicewatch: rejected an event that is not JSON (%s)", _first_line(exc))
            return
        with self._spill_lock:
            if self._write_spill_locked([line], 1):
                self._spilled_by_emit += 1
            else:
                self._dropped_by_emit += 1

    def _write_spill_locked(self, lines: list[str], count: int) -> bool:
        """Append ``lines`` (``count`` events) to this monitor's spill file, or count a drop."""
        size = sum(len(line) for line in lines)
        try:
            if self._spill_bytes + size > self._max_spill_bytes:
                raise OSError(f"the spill budget of {self._max_spill_bytes} bytes is used up")
            if self._spill_handle is None:
                self._open_spill_locked()
            handle = self._spill_handle
            assert handle is not None
            # Buffered: a system call here would release the GIL, and taking it
            # back can cost a caller a whole switch interval (5 ms) while the
            # writer is busy. The writer flushes the file every turn instead.
            handle.write("".join(lines))
            self._spill_dirty = True
            if self._closed:  # no writer will claim it: leave a closed file for the next monitor
                handle.close()
                self._spill_handle = None
        except Exception as exc:
            self._dropped += count
            if _log_sparsely(self._dropped):
                log.error(
                    "voicewatch: dropped %d event(s): cannot spill to %s (%s); %d dropped so far",
                    count,
                    self.spill_path,
                    _first_line(exc),
                    self._dropped,
                )
            return False
        self._spill_bytes += size
        self._spill_file_events += count
        self._spilled_total += count
        return True

    def _open_spill_locked(self) -> None:
        self.spill_path.mkdir(parents=True, exist_ok=True)
        if self._spill_file is None:
            self._spill_seq += 1
            name = f"{os.getpid()}-{self._instance}-{self._spill_seq:06d}{_SPILL_SUFFIX}"
            self._spill_file = self.spill_path / name
            self._spill_file_events = 0
            if not self._closed:
                log.warning(
                    "voicewatch: the in-memory queue is full (%d events); spilling to %s",
                    self._max_queue,
                    self._spill_file,
                )
        self._spill_handle = open(self._spill_file, "a", encoding="utf-8")  # noqa: SIM115

    def _flush_spill(self) -> None:
        """Hand buffered spill lines to the OS, so a crash loses at most one writer turn."""
        if not self._spill_dirty:
            return
        with self._spill_lock:
            self._spill_dirty = False
            if self._spill_handle is not None:
                try:
                    self._spill_handle.flush()
                except OSError as exc:
                    self._writer_errors += 1
                    log.error("voicewatch: cannot flush the spill file (%s)", _first_line(exc))

    def _claim_own_spill(self) -> None:
        """Rename the current spill file for replay; emitters start a new one meanwhile."""
        with self._spill_lock:
            if self._spill_file is None or self._spill_file_events == 0:
                return
            if self._spill_handle is not None:
                self._spill_handle.close()
                self._spill_handle = None
            source = self._spill_file
            target = source.with_name(source.name.removesuffix(_SPILL_SUFFIX) + _REPLAY_SUFFIX)
            events = self._spill_file_events
            self._spill_file = None
            self._spill_file_events = 0
            try:
                size = source.stat().st_size
                source.rename(target)
            except OSError as exc:
                self._writer_errors += 1
                log.error("voicewatch: cannot claim spill file %s (%s)", source, _first_line(exc))
                claimed = False
            else:
                claimed = True
        if claimed:
            self._queue_replay(_Replay(target, events, size))
        else:
            self._mark_handled(spill=events)  # a flush must not wait for it forever

    def _claim_orphans(self) -> None:
        """Claim spill files that no live monitor owns (a crashed or closed one's)."""
        if not self.spill_path.is_dir():
            return
        live_here = {m._instance for m in _live_monitors() if not m._closed}
        for path in sorted(self.spill_path.glob("*.jsonl")):
            parts = path.name.split("-", 2)
            if len(parts) != 3 or not parts[0].isdigit():
                continue
            pid, instance = int(parts[0]), parts[1]
            if pid == os.getpid() and instance in live_here:
                continue
            if pid != os.getpid() and _pid_alive(pid):
                continue
            target = self.spill_path / (
                f"{os.getpid()}-{self._instance}-o{uuid.uuid4().hex[:8]}{_REPLAY_SUFFIX}"
            )
            try:
                size = path.stat().st_size
                path.rename(target)  # atomic: if another monitor won the race, skip it
            except OSError:
                continue
            log.warning("voicewatch: replaying %s, left by an earlier monitor", path.name)
            self._queue_replay(_Replay(target, 0, size))

    def _queue_replay(self, replay: _Replay) -> None:
        with self._progress:
            self._files_claimed += 1
        self._replay_queue.append(replay)

    # --- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    busy = self._step()
                except Exception:  # a bug here must not end the thread silently
                    self._writer_errors += 1
                    log.exception("voicewatch: emitter writer error")
                    busy = False
                    self._abandon.wait(self._flush_interval)
                self._flush_spill()
                if self._closing and (self._abandon.is_set() or not self._pending()):
                    break
                urgent = self._flush_waiters > 0 or self._closing
                more = len(self._queue) >= self._batch_size or self._replay is not None
                if not busy or not (more or (urgent and len(self._queue) > 0)):
                    self._wake.wait(self._flush_interval)
                    self._wake.clear()
        finally:
            self._shutdown_writer()

    def _pending(self) -> bool:
        return bool(
            self._queue or self._replay is not None or self._replay_queue or self._spill_file_events
        )

    def _step(self) -> bool:
        """Write one batch from the queue, then one from a spill file; True if any work."""
        busy = False
        batch = self._take()
        if batch:
            busy = True
            if not self._deliver(batch):
                self._spill_batch(batch)
            self._mark_handled(len(batch))
        if self._abandon.is_set():
            return busy
        if self._replay is None and not self._replay_queue:
            self._claim_own_spill()
        replay_batch = self._next_replay_batch()
        if replay_batch is not None:
            busy = True
            if not self._deliver(replay_batch):
                return busy  # closing: the file stays on disk for a later monitor
            self._replayed += len(replay_batch)
            self._finish_replay_file_if_done()
        return busy

    def _take(self) -> list[dict[str, Any]]:
        with self._pop_lock:
            queue = self._queue
            n = min(len(queue), self._batch_size)
            batch = [queue.popleft() for _ in range(n)]
            self._popped += n
        return batch

    def _mark_handled(self, n: int = 0, spill: int = 0, files: int = 0) -> None:
        with self._progress:
            self._handled += n
            self._spill_done += spill
            self._files_done += files
            self._progress.notify_all()

    def _next_replay_batch(self) -> list[Any] | None:
        replay = self._replay
        if replay is None:
            if not self._replay_queue:
                return None
            replay = self._replay = self._replay_queue.pop(0)
            try:
                replay.handle = open(replay.path, encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                self._writer_errors += 1
                log.error("voicewatch: cannot read spill file %s (%s)", replay.path, exc)
                self._replay = None
                self._mark_handled(spill=replay.own_events, files=1)
                return None
        assert replay.handle is not None
        batch: list[Any] = []
        while len(batch) < self._batch_size:
            line = replay.handle.readline()
            if not line:
                replay.finished = True
                break
            if not line.strip():
                continue
            try:
                batch.append(json.loads(line))
            except ValueError:
                # A torn last line from a crash: nothing to recover from it.
                self._writer_errors += 1
                log.warning("voicewatch: skipped an unreadable line in %s", replay.path.name)
        if not batch:
            self._finish_replay_file_if_done()
            return None
        return batch

    def _finish_replay_file_if_done(self) -> None:
        replay = self._replay
        if replay is None or not replay.finished:
            return
        if replay.handle is not None:
            replay.handle.close()
        try:
            replay.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._writer_errors += 1
            log.error("voicewatch: cannot delete replayed file %s (%s)", replay.path, exc)
        if replay.own_events:
            with self._spill_lock:
                self._spill_bytes = max(0, self._spill_bytes - replay.size)
        self._replay = None
        self._mark_handled(spill=replay.own_events, files=1)

    def _spill_batch(self, batch: list[dict[str, Any]]) -> None:
        """Keep events the writer could not deliver before close gave up on it."""
        lines: list[str] = []
        for event in batch:
            try:
                lines.append(json.dumps(event, separators=(",", ":")) + "\n")
            except (TypeError, ValueError, RecursionError):
                self._rejected += 1
        if lines:
            with self._spill_lock:
                self._write_spill_locked(lines, len(lines))

    def _deliver(self, batch: list[Any]) -> bool:
        """Write ``batch``, retrying transient failures with capped exponential backoff.

        Returns False only when ``close`` has given up waiting; the caller then
        keeps the events on disk. A batch the store chokes on (not a transient
        error) is split in halves until the bad event is found and rejected.
        """
        delay = self._retry_delay
        failures = 0
        while True:
            try:
                outcome = self._sink.write(batch)
            except _Transient as exc:
                failures += 1
                self._retries += 1
                log.warning(
                    "voicewatch: cannot write %d event(s) to %s (%s); retry %d in %.2f s",
                    len(batch),
                    self.destination,
                    exc,
                    failures,
                    delay,
                )
                self._flush_spill()
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * self._retry_backoff, self._max_retry_delay)
                continue
            except _TooLarge as exc:
                if len(batch) == 1:
                    self._record_rejected(batch, [(0, f"too large for the store ({exc})")])
                    return True
                half = len(batch) // 2
                return self._deliver(batch[:half]) and self._deliver(batch[half:])
            except Exception as exc:
                if len(batch) == 1:
                    self._record_rejected(batch, [(0, _first_line(exc))])
                    return True
                log.warning(
                    "voicewatch: a batch of %d made the store fail (%s); splitting it",
                    len(batch),
                    _first_line(exc),
                )
                half = len(batch) // 2
                return self._deliver(batch[:half]) and self._deliver(batch[half:])
            if failures:
                log.warning(
                    "voicewatch: %s is reachable again after %d failed attempt(s)",
                    self.destination,
                    failures,
                )
            self._written += outcome.written
            self._duplicates += outcome.duplicates
            if outcome.rejected:
                self._record_rejected(batch, outcome.rejected)
            return True

    def _record_rejected(self, batch: list[Any], rejected: list[tuple[int, str]]) -> None:
        self._rejected += len(rejected)
        index, error = rejected[0]
        item = batch[index] if 0 <= index < len(batch) else None
        event_type = item.get("event_type") if isinstance(item, dict) else None
        log.warning(
            "voicewatch: the store rejected %d of %d event(s); first: %r (%s)",
            len(rejected),
            len(batch),
            event_type,
            error,
        )

    def _shutdown_writer(self) -> None:
        if self._abandon.is_set():
            leftover = self._take()
            if leftover:
                self._spill_batch(leftover)
                self._mark_handled(len(leftover))
        if self._replay is not None and self._replay.handle is not None:
            self._replay.handle.close()
        with self._spill_lock:
            if self._spill_handle is not None:
                self._spill_handle.close()
                self._spill_handle = None
        try:
            self._sink.close()
        except Exception:
            log.debug("voicewatch: closing the sink failed", exc_info=True)
        with self._progress:
            self._progress.notify_all()

    # --- control -------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event emitted (or spilled) before this call is written.

        That includes spill files this monitor took over from an earlier one.

        "Written" includes events the store rejected or already had. Returns
        False if that did not happen within ``timeout`` seconds (``None``:
        wait as long as it takes), e.g. because the store is down.
        """
        if threading.current_thread() is self._thread:
            return False
        with self._pop_lock:
            target = self._popped + len(self._queue)
        with self._spill_lock:
            spill_target = self._spilled_total
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            files_target = self._files_claimed
            self._flush_waiters += 1
            self._wake.set()
            try:
                while (
                    self._handled < target
                    or self._spill_done < spill_target
                    or self._files_done < files_target
                ):
                    if self._thread is None or not self._thread.is_alive():
                        return False
                    remaining = 0.1 if deadline is None else deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._progress.wait(min(remaining, 0.1))
                    self._wake.set()
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the writer thread. True if everything was written.

        If the store stays unreachable for ``timeout`` seconds, the events
        still in memory are spilled to disk, where the next monitor for the
        same destination finds and replays them. Events emitted after close
        are spilled the same way. Safe to call twice.
        """
        with self._close_lock:
            if self._closed:
                return self._close_result
            deadline = None if timeout is None else time.monotonic() + timeout
            flushed = self.flush(timeout)
            self._closing = True
            with self._spill_lock:
                # From now on emit() spills to disk, one open-append-close per
                # event, so the file is whole whenever another monitor claims it.
                self._capacity = 0
                self._closed = True
                if self._spill_handle is not None:
                    self._spill_handle.close()
                    self._spill_handle = None
            if not flushed:
                self._abandon.set()
            self._wake.set()
            thread = self._thread
            if thread is not None:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(remaining)
                if thread.is_alive():
                    self._abandon.set()
                    thread.join(5.0)
            # An emit() racing close may have queued after the writer's last look.
            leftover = self._take()
            if leftover:
                self._spill_batch(leftover)
            _LIVE.discard(self)
            self._close_result = flushed and not leftover and not (thread and thread.is_alive())
            return self._close_result

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(self._close_timeout)

    def stats(self) -> dict[str, int]:
        """Counters since this monitor started (a plain dict, cheap to call)."""
        with self._pop_lock:
            popped = self._popped
            depth = len(self._queue)
        with self._spill_lock:
            # emit() queued each event it took (popped or still queued) or, when the
            # queue was full, spilled, dropped or rejected it: the sum is "emitted".
            accepted = self._spilled_by_emit + self._dropped_by_emit + self._emit_rejected
            spilled = self._spilled_total
            dropped = self._dropped
            emit_errors = self._emit_errors
            emit_rejected = self._emit_rejected
        return {
            "emitted": popped + depth + accepted,
            "written": self._written,
            "duplicates": self._duplicates,
            "rejected": self._rejected + emit_rejected,
            "spilled": spilled,
            "replayed": self._replayed,
            "dropped": dropped,
            "errors": emit_errors + self._writer_errors,
            "retries": self._retries,
            "queue_depth": depth,
        }

    # --- stages ----------------------------------------------------------------------------------

    def stage(
        self,
        stage: str | model.Stage,
        *,
        artifact_id: str | None = None,
        organization_id: str | None = None,
        **fields: Any,
    ) -> StageRun:
        """Time one run of a processing stage: ``with monitor.stage("transcription", ...) as st:``.

        Emits the stage's *started* event on entry; on a normal exit its
        *completed* event with ``duration_ms`` and ``st.metadata``; on an
        exception its *failed* event with ``error_message`` and ``error_code``,
        and then lets the exception go on, untouched. ``fields`` (e.g.
        ``coach_user_id``, ``metadata``) go on every event; an ``event_id``
        among them becomes the prefix of each event's id, so a re-run of the
        same attempt is recognised as a duplicate.
        """
        return StageRun(
            self, stage, artifact_id=artifact_id, organization_id=organization_id, fields=fields
        )

    # --- fork -----------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """The child gets its own ids, queue, spill file and writer; the parent keeps its own."""
        self._close_lock = threading.Lock()
        self._init_runtime()
        self._sink.reset_after_fork()
        self._start_writer()


def _as_dict(value: Any) -> Any:
    """``dict(value)``, or the value unchanged for the store to reject."""
    try:
        return dict(value)
    except Exception:
        return value


class StageRun:
    """One timed run of a stage, as handed out by ``Monitor.stage``.

    ``metadata`` (or ``set(...)``) adds metadata to the closing event, e.g.
    ``st.set(claim_count=4, confidence_score=0.9)``; ``fields`` adds top-level
    fields to it. ``completed_event`` picks the completion type where a stage
    has two (``entity_needs_disambiguation``).
    """

    def __init__(
        self,
        monitor: Monitor,
        stage: str | model.Stage,
        *,
        artifact_id: str | None,
        organization_id: str | None,
        fields: dict[str, Any],
    ) -> None:
        self._monitor = monitor
        self.events: model.StageEvents | None
        try:
            self.events = model.STAGE_EVENTS[model.Stage(stage)]
        except Exception:
            # Monitoring never stops a pipeline: run the block unmonitored and say so.
            self.events = None
            monitor._emit_failed()
        self.stage = self.events.stage.value if self.events else str(stage)
        base = {k: v for k, v in fields.items() if v is not None}
        self._id_prefix = base.pop("event_id", None)
        base.pop("timestamp", None)
        base_meta = base.pop("metadata", None)
        self._base_meta: dict[str, Any] = dict(base_meta) if isinstance(base_meta, dict) else {}
        if artifact_id is not None:
            base["artifact_id"] = artifact_id
        if organization_id is not None:
            base["organization_id"] = organization_id
        self._base = base
        self.metadata: dict[str, Any] = dict(self._base_meta)
        self.fields: dict[str, Any] = {}
        self.completed_event: str | None = self.events.completed[0] if self.events else None
        self.started_at: int | None = None
        self.duration_ms: float | None = None
        self._t0 = 0.0

    def set(self, **metadata: Any) -> StageRun:
        """Add metadata to the closing event (``claim_count=...``, ``ai_cost=...``)."""
        self.metadata.update(metadata)
        return self

    def _emit(self, event_type: str, **extra: Any) -> None:
        event = dict(self._base)
        event.update(extra)
        event["pipeline_stage"] = self.stage
        if self._id_prefix:
            event["event_id"] = f"{self._id_prefix}.{event_type}"
        self._monitor.emit(event_type, **event)

    def __enter__(self) -> StageRun:
        try:
            self.started_at = self._monitor._clock()
            self._t0 = self._monitor._timer()
            if self.events is not None:
                self._emit(
                    self.events.started,
                    stage_started_at=self.started_at,
                    timestamp=self.started_at,
                    metadata=self._base_meta or None,
                )
        except Exception:
            self._monitor._emit_failed()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            self._finish(exc)
        except Exception:
            self._monitor._emit_failed()
        return False  # never swallow the pipeline's exception

    async def __aenter__(self) -> StageRun:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def _finish(self, exc: BaseException | None) -> None:
        if self.events is None:
            return
        ended = self._monitor._clock()
        self.duration_ms = round(max(0.0, (self._monitor._timer() - self._t0) * 1000.0), 3)
        common: dict[str, Any] = {
            "stage_started_at": self.started_at,
            "stage_completed_at": ended,
            "duration_ms": self.duration_ms,
            "timestamp": ended,
            "metadata": self.metadata or None,
        }
        common.update(self.fields)
        if exc is None:
            completed = self.completed_event
            if completed not in self.events.completed:
                log.warning("voicewatch: %r does not complete stage %s", completed, self.stage)
                completed = self.events.completed[0]
            self._emit(completed, **common)
        else:
            self._emit(
                self.events.failed,
                error_message=_error_message(exc),
                error_code=_error_code(exc),
                **common,
            )


def _clean(text: str, limit: int) -> str:
    return text.replace("\x00", "\ufffd")[:limit]


def _error_message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return _clean(text or type(exc).__name__, model.ERROR_MESSAGE_MAX_LEN)


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    if not isinstance(code, str) or not code:
        code = type(exc).__name__
    return _clean(code, model.ERROR_CODE_MAX_LEN)


# --- process hooks ---------------------------------------------------------------------------


def _live_monitors() -> list[Monitor]:
    """A snapshot of the open monitors (another thread may add one while we copy)."""
    for _ in range(10):
        try:
            return list(_LIVE)
        except RuntimeError:
            continue
    return []


def _close_all_at_exit() -> None:
    """Flush every open monitor when the interpreter exits (the writer is a daemon thread)."""
    for monitor in _live_monitors():
        with contextlib.suppress(Exception):
            monitor.close(monitor._close_timeout)


def _reinit_all_after_fork() -> None:
    for monitor in _live_monitors():
        with contextlib.suppress(Exception):
            monitor._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_all_after_fork)
