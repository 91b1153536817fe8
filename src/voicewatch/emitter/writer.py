"""The writer-thread half of :class:`~voicewatch.emitter.Monitor`.

One daemon thread per monitor drains the in-memory queue in batches (up to
``batch_size`` events, or whatever arrived within ``flush_interval``) and hands each
batch to the sink. Because a batch is idempotent by ``event_id``, the writer simply
sends it again after a transient failure, with capped exponential backoff, logging and
counting each failure; a batch the store chokes on is split in halves until the bad
event is found and rejected. Between batches it flushes, rotates and replays the spill
file (:mod:`voicewatch.emitter.spill`).

:class:`Writer` holds only the thread's steps; the state they share with the calling
side (queue, counters, locks) is made by ``Monitor._init_runtime``.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from voicewatch.emitter.log import first_line, log
from voicewatch.emitter.sinks import DatabaseSink, HttpSink, TooLarge, Transient
from voicewatch.emitter.spill import Replay, SpillFile


class Writer:
    """The writer thread's loop and steps, mixed into ``Monitor``."""

    # Set by Monitor.__init__ / Monitor._init_runtime.
    destination: str
    _sink: DatabaseSink | HttpSink
    _spill: SpillFile
    _queue: deque[dict[str, Any]]
    _batch_size: int
    _flush_interval: float
    _retry_delay: float
    _retry_backoff: float
    _max_retry_delay: float
    _wake: threading.Event
    _abandon: threading.Event
    _pop_lock: threading.Lock
    _progress: threading.Condition
    _popped: int
    _handled: int  # popped events that were written, rejected or spilled
    _spill_done: int  # own spilled events replayed from disk
    _files_claimed: int  # spill files taken for replay (own and orphans)
    _files_done: int
    _flush_waiters: int
    _closing: bool
    _written: int
    _duplicates: int
    _rejected: int
    _retries: int
    _replayed: int
    _writer_errors: int
    _replay: Replay | None
    _replay_queue: list[Replay]

    def _queue_replay(self, replay: Replay) -> None:
        with self._progress:
            self._files_claimed += 1
        self._replay_queue.append(replay)

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
                self._spill.flush()
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
            self._queue
            or self._replay is not None
            or self._replay_queue
            or self._spill.unclaimed_events
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

    def _claim_own_spill(self) -> None:
        """Rotate this monitor's spill file for replay (emitters start a new one)."""
        replay, events = self._spill.rotate()
        if replay is not None:
            self._queue_replay(replay)
        elif events:
            self._mark_handled(spill=events)  # a flush must not wait for it forever

    def _next_replay_batch(self) -> list[Any] | None:
        replay = self._replay
        if replay is None:
            if not self._replay_queue:
                return None
            replay = self._replay = self._replay_queue.pop(0)
            if not self._spill.open_replay(replay):
                self._replay = None
                self._mark_handled(spill=replay.own_events, files=1)
                return None
        batch = self._spill.read_batch(replay, self._batch_size)
        if not batch:
            self._finish_replay_file_if_done()
            return None
        return batch

    def _finish_replay_file_if_done(self) -> None:
        replay = self._replay
        if replay is None or not replay.finished:
            return
        self._spill.finish_replay(replay)
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
            with self._spill.lock:
                self._spill.append_locked(lines, len(lines))

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
            except Transient as exc:
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
                self._spill.flush()
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * self._retry_backoff, self._max_retry_delay)
                continue
            except TooLarge as exc:
                if len(batch) == 1:
                    self._record_rejected(batch, [(0, f"too large for the store ({exc})")])
                    return True
                half = len(batch) // 2
                return self._deliver(batch[:half]) and self._deliver(batch[half:])
            except Exception as exc:
                if len(batch) == 1:
                    self._record_rejected(batch, [(0, first_line(exc))])
                    return True
                log.warning(
                    "voicewatch: a batch of %d made the store fail (%s); splitting it",
                    len(batch),
                    first_line(exc),
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
        with self._spill.lock:
            self._spill.close_file_locked()
        try:
            self._sink.close()
        except Exception:
            log.debug("voicewatch: closing the sink failed", exc_info=True)
        with self._progress:
            self._progress.notify_all()
