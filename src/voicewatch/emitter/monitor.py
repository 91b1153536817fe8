"""The monitor: what the pipeline holds and calls (``emit``, ``stage``, ``flush``, ``close``).

``Monitor.emit`` only builds a dict and appends it to an in-memory
``collections.deque`` (append and popleft are atomic, and far cheaper than a
``queue.Queue`` with its lock and condition). On that path it takes no lock and does
no I/O, and it catches every exception: a caller never waits on the store and never
sees an error from it. Once the deque holds ``max_queue`` events, ``emit`` appends the
event to the spill file instead (:mod:`voicewatch.emitter.spill`). The writer thread's
side is :class:`voicewatch.emitter.writer.Writer`.

An exit hook closes every open monitor (flushing for up to ``close_timeout`` seconds,
then spilling what is left), and a forked child gets its own ids, queue, connections
and writer thread.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voicewatch import model
from voicewatch.clock import now_ms
from voicewatch.emitter.log import first_line, log, log_sparsely
from voicewatch.emitter.sinks import DEFAULT_MAX_REQUEST_BYTES, DatabaseSink, HttpSink
from voicewatch.emitter.spill import SpillFile, default_spill_root, destination_key
from voicewatch.emitter.stage import StageRun
from voicewatch.emitter.writer import Writer

DEFAULT_MAX_QUEUE = 100_000
DEFAULT_FLUSH_INTERVAL_S = 0.05
DEFAULT_RETRY_DELAY_S = 0.05
DEFAULT_RETRY_BACKOFF = 2.0
DEFAULT_MAX_RETRY_DELAY_S = 2.0
DEFAULT_MAX_SPILL_BYTES = 1 << 30

_LIVE: weakref.WeakSet[Monitor] = weakref.WeakSet()


class Monitor(Writer):
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
        self._sink: DatabaseSink | HttpSink
        if endpoint is not None:
            self._sink = HttpSink(
                endpoint, str(token), timeout=http_timeout, max_bytes=max_request_bytes
            )
        else:
            url = database_url if database_url is not None else str(engine.url)
            if migrate is None:
                migrate = url.startswith("sqlite")
            self._sink = DatabaseSink(
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
        self.spill_path = root / destination_key(database_url, engine, endpoint)
        self._closed = False
        self._close_result = False
        self._close_lock = threading.Lock()
        self._init_runtime()
        try:
            live = [m._instance for m in live_monitors() if not m._closed]
            for replay in self._spill.claim_orphans(live):
                self._queue_replay(replay)
        except Exception:
            self._writer_errors += 1
            log.warning("voicewatch: could not look for old spill files", exc_info=True)
        _LIVE.add(self)
        self._start_writer()

    def _init_runtime(self) -> None:
        """State that is per process: also rebuilt in a forked child."""
        # The hot path reads these few attributes only.
        self._queue = deque()
        self._capacity = 0 if self._closed else self._max_queue
        self._id_prefix = str(uuid.uuid4())[:24]  # a random UUID4's first 74 bits
        self._ids = itertools.count()
        self._wake = threading.Event()
        # Writer side.
        self._pop_lock = threading.Lock()
        self._popped = 0
        self._progress = threading.Condition()
        self._handled = 0
        self._spill_done = 0
        self._files_claimed = 0
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
        self._replay = None
        self._replay_queue = []
        # Emit side, slow paths only.
        self._instance = uuid.uuid4().hex[:12]
        self._spill = SpillFile(
            self.spill_path,
            self._instance,
            max_bytes=self._max_spill_bytes,
            queue_limit=self._max_queue,
            closed=self._closed,
        )
        # The emit-side counters share the spill lock: stats() reads them in one go.
        self._spill_lock = self._spill.lock
        self._spilled_by_emit = 0
        self._dropped_by_emit = 0
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
            if log_sparsely(count):
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
            if log_sparsely(count):
                log.warning("voicewatch: rejected an event that is not JSON (%s)", first_line(exc))
            return
        with self._spill_lock:
            if self._spill.append_locked([line], 1):
                self._spilled_by_emit += 1
            else:
                self._dropped_by_emit += 1

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
            spill_target = self._spill.total
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
                self._spill.closed = True
                self._spill.close_file_locked()
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
            spilled = self._spill.total
            dropped = self._spill.dropped
            spill_errors = self._spill.errors
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
            "errors": emit_errors + spill_errors + self._writer_errors,
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


# --- process hooks ---------------------------------------------------------------------------


def live_monitors() -> list[Monitor]:
    """A snapshot of the open monitors (another thread may add one while we copy)."""
    for _ in range(10):
        try:
            return list(_LIVE)
        except RuntimeError:
            continue
    return []


def _close_all_at_exit() -> None:
    """Flush every open monitor when the interpreter exits (the writer is a daemon thread)."""
    for monitor in live_monitors():
        with contextlib.suppress(Exception):
            monitor.close(monitor._close_timeout)


def _reinit_all_after_fork() -> None:
    for monitor in live_monitors():
        with contextlib.suppress(Exception):
            monitor._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_all_after_fork)
