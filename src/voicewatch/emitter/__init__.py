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

The package, one idea a module: :mod:`.monitor` (the :class:`Monitor` callers hold,
and its exit and fork hooks), :mod:`.writer` (the writer thread's loop, delivery and
retries), :mod:`.sinks` (the database and HTTP destinations), :mod:`.spill` (the
spill file: append, rotate, replay, claim orphans), :mod:`.stage` (stage timing) and
:mod:`.log` (one logger, sparse in a storm).
"""

from voicewatch.emitter.monitor import (
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_RETRY_DELAY_S,
    DEFAULT_MAX_SPILL_BYTES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_DELAY_S,
    Monitor,
)
from voicewatch.emitter.sinks import DEFAULT_MAX_REQUEST_BYTES, EVENTS_PATH
from voicewatch.emitter.spill import default_spill_root
from voicewatch.emitter.stage import StageRun

__all__ = [
    "DEFAULT_FLUSH_INTERVAL_S",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_RETRY_DELAY_S",
    "DEFAULT_MAX_SPILL_BYTES",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_DELAY_S",
    "EVENTS_PATH",
    "Monitor",
    "StageRun",
    "default_spill_root",
]
