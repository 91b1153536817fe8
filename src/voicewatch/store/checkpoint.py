"""WAL checkpoints off the write path: one background thread per SQLite file and process.

SQLite's automatic checkpoint runs inside the ``COMMIT`` of whichever writer
pushes the WAL past its threshold: that one call then copies up to 40 MB into
the database file. SQLite has released the write lock by then, but the caller
has not: a stage's claim took 130 ms, and the server's grouped event write,
which holds the server's write gate (``web/write_gate``), took 360 ms with
every other request of the server waiting behind it (``bench/bench_load.py``,
30 s embedded). So connections are opened with ``wal_autocheckpoint=0`` and a
daemon thread of each writing process checkpoints instead, once the WAL has
grown past ``WAL_CHECKPOINT_BYTES``: ``PASSIVE``, so it never waits for, nor
blocks, a reader or a writer. Two processes checkpointing at once are
serialised by SQLite (the second finds nothing left to copy).

A ``PASSIVE`` checkpoint alone never ends a WAL under steady writes: SQLite
starts the WAL over only when a writer begins after *every* frame was
copied, and a writer that keeps appending while the copy runs means that
never happens (``bench_pages`` filling a million events grew a 591 MB store's
WAL to 18 GB). So when the thread's copy leaves a WAL of a threshold or more,
it asks this process's next writer to finish the job: right after its
commit, that writer runs one more ``PASSIVE`` checkpoint on its own
connection (``finish_in_writer``), which copies only the frames appended
since the thread's copy, and completes, since nothing of this writer is
appending then; its next transaction starts the WAL over.
``journal_size_limit`` (``engine.py``) then cuts the file back to the
threshold, so the disk holds about one threshold of WAL.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("voicewatch.checkpoint")

#: WAL size at which the checkpointer copies it into the database file.
WAL_CHECKPOINT_BYTES = 40 * 1024 * 1024
#: How often the checkpointer looks at the WAL's size, seconds.
POLL_S = 0.5
#: databases whose WAL a writer of this process should finish checkpointing
_tail_wanted: set[str] = set()

_lock = threading.Lock()
#: this process's checkpointers: (pid, database) -> (thread, its stop signal)
_running: dict[tuple[int, str], tuple[threading.Thread, threading.Event]] = {}


def wal_bytes(database: Path) -> int:
    """The size of ``database``'s WAL file (0 when there is none)."""
    try:
        return os.stat(f"{database}-wal").st_size
    except OSError:
        return 0


def checkpoint(database: Path) -> tuple[int, int, int, int]:
    """One ``PASSIVE`` checkpoint: (busy, WAL frames, frames copied) as SQLite reports
    them, and the page size (a frame's size)."""
    conn = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return int(busy), int(frames), int(copied), int(page)


def tail_wanted(database: str) -> bool:
    """Whether this process's next writer to ``database`` should ``finish_in_writer``."""
    return database in _tail_wanted


def finish_in_writer(database: str, dbapi_connection: Any) -> None:
    """The writer's share: copy the WAL's last frames, so that its next write starts it over."""
    _tail_wanted.discard(database)
    dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _watch(database: Path, threshold: int, poll_s: float, stop: threading.Event) -> None:
    seen = False
    while database.exists() or not seen:
        seen = seen or database.exists()
        if stop.wait(poll_s):
            return
        if wal_bytes(database) < threshold:
            continue
        started = time.perf_counter()
        try:
            _busy, frames, copied, page = checkpoint(database)
            if frames * page >= threshold:
                _tail_wanted.add(str(database))
        except sqlite3.Error as exc:  # e.g. the file was just deleted: look again later
            log.debug("checkpoint of %s failed: %s", database, exc)
            continue
        log.debug(
            "checkpointed %s: %d of %d frames in %.0f ms",
            database,
            copied,
            frames,
            (time.perf_counter() - started) * 1000,
        )


def ensure_checkpointer(
    database: str, threshold: int = WAL_CHECKPOINT_BYTES, poll_s: float = POLL_S
) -> None:
    """Start this process's checkpointer for ``database`` unless it runs already.

    It waits for the file to appear, and ends by itself when the file is gone
    (a test's temporary store).
    """
    key = (os.getpid(), database)  # threads do not survive a fork: one per process
    running = _running.get(key)
    if running is not None and running[0].is_alive():
        return
    with _lock:
        if key in _running and _running[key][0].is_alive():
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=_watch,
            args=(Path(database), threshold, poll_s, stop),
            name=f"voicewatch-checkpoint:{Path(database).name}",
            daemon=True,
        )
        _running[key] = (thread, stop)
        thread.start()


def stop_checkpointer(database: str) -> None:
    """End this process's checkpointer for ``database`` (its engine was disposed).

    Without it every store a process ever wrote to keeps a thread waking twice a
    second until the file is deleted: hundreds in a test run, competing for the
    GIL. A later write to the same file starts a new one (``ensure_checkpointer``).
    """
    with _lock:
        running = _running.pop((os.getpid(), database), None)
    if running is not None:
        running[1].set()
