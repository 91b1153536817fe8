"""The spill file: where events go when the in-memory queue is full, until the store answers.

One :class:`SpillFile` per monitor (and per process: a forked child makes its own)
owns the files of one destination directory that carry its instance name:

* **append** (:meth:`SpillFile.append_locked`): JSON lines into
  ``{pid}-{instance}-{seq}.spill.jsonl``, buffered (the writer thread calls
  :meth:`SpillFile.flush` every turn), within a disk budget; past it the events are
  dropped and counted.
* **rotate** (:meth:`SpillFile.rotate`): rename the current file to
  ``.replay.jsonl``, so emitters start a new one and never write into a file being read.
* **replay** (:meth:`SpillFile.open_replay`, :meth:`SpillFile.read_batch`,
  :meth:`SpillFile.finish_replay`): read a claimed file a batch at a time, skip a torn
  last line, delete the file when it is done and give its bytes back to the budget.
* **claim orphans** (:meth:`SpillFile.claim_orphans`): take over the files that no live
  monitor owns (a crashed process's, a closed monitor's), by an atomic rename.

Nothing here starts a thread or waits: the monitor decides when each step runs, and a
test can drive every step directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from voicewatch.config import cache_home
from voicewatch.emitter.log import first_line, log, log_sparsely

SPILL_SUFFIX = ".spill.jsonl"
REPLAY_SUFFIX = ".replay.jsonl"


def destination_key(database_url: str | None, engine: Any, endpoint: str | None) -> str:
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
    root = Path(cache_home()) / "voicewatch" / "spill"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "voicewatch-spill"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (then its spill files are its own to replay)."""
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


@dataclass
class Replay:
    """A claimed spill file being written to the store, ``batch_size`` lines at a time."""

    path: Path
    own_events: int  # events this monitor spilled into it (0 for another process's file)
    size: int
    handle: IO[str] | None = None
    finished: bool = False


class SpillFile:
    """One monitor's spill files in ``directory``: append, rotate, replay, claim orphans.

    :param directory: the destination's spill directory (made on first append).
    :param instance: the owning monitor's instance name, part of every file name.
    :param max_bytes: disk budget of the files not yet replayed.
    :param queue_limit: the in-memory queue size, for the log line when spilling starts.
    :param closed: the monitor is closed: each append closes the file again, so the
        file is whole whenever another monitor claims it.

    ``lock`` guards the appending side; the monitor also counts its emit-side figures
    under it. ``errors`` counts I/O failures that lost no event by themselves (a flush,
    a rename, an unreadable line); ``dropped`` counts events that could not be spilled.
    """

    def __init__(
        self,
        directory: Path,
        instance: str,
        *,
        max_bytes: int,
        queue_limit: int,
        closed: bool = False,
    ) -> None:
        self.directory = directory
        self.instance = instance
        self.max_bytes = max_bytes
        self.queue_limit = queue_limit
        self.closed = closed
        self.lock = threading.Lock()
        self.bytes = 0  # on disk, not yet replayed
        self.total = 0  # own events ever written to spill files
        self.dropped = 0
        self.errors = 0
        self._handle: IO[str] | None = None
        self._dirty = False
        self._file: Path | None = None
        self._file_events = 0
        self._seq = 0

    @property
    def unclaimed_events(self) -> int:
        """Events in the current file, not yet rotated for replay."""
        return self._file_events

    # --- append (emit's slow path; the caller holds ``lock``) ----------------------------

    def append_locked(self, lines: list[str], count: int) -> bool:
        """Append ``lines`` (``count`` events) to the current file, or count a drop."""
        size = sum(len(line) for line in lines)
        try:
            if self.bytes + size > self.max_bytes:
                raise OSError(f"the spill budget of {self.max_bytes} bytes is used up")
            if self._handle is None:
                self._open_locked()
            handle = self._handle
            assert handle is not None
            # Buffered: a system call here would release the GIL, and taking it
            # back can cost a caller a whole switch interval (5 ms) while the
            # writer is busy. The writer flushes the file every turn instead.
            handle.write("".join(lines))
            self._dirty = True
            if self.closed:  # no writer will claim it: leave a closed file for the next monitor
                handle.close()
                self._handle = None
        except Exception as exc:
            self.dropped += count
            if log_sparsely(self.dropped):
                log.error(
                    "voicewatch: dropped %d event(s): cannot spill to %s (%s); %d dropped so far",
                    count,
                    self.directory,
                    first_line(exc),
                    self.dropped,
                )
            return False
        self.bytes += size
        self._file_events += count
        self.total += count
        return True

    def _open_locked(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._file is None:
            self._seq += 1
            name = f"{os.getpid()}-{self.instance}-{self._seq:06d}{SPILL_SUFFIX}"
            self._file = self.directory / name
            self._file_events = 0
            if not self.closed:
                log.warning(
                    "voicewatch: the in-memory queue is full (%d events); spilling to %s",
                    self.queue_limit,
                    self._file,
                )
        self._handle = open(self._file, "a", encoding="utf-8")  # noqa: SIM115

    def close_file_locked(self) -> None:
        """Close the current file (it stays current: the next append reopens it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def flush(self) -> None:
        """Hand buffered lines to the OS, so a crash loses at most one writer turn."""
        if not self._dirty:
            return
        with self.lock:
            self._dirty = False
            if self._handle is not None:
                try:
                    self._handle.flush()
                except OSError as exc:
                    self.errors += 1
                    log.error("voicewatch: cannot flush the spill file (%s)", first_line(exc))

    # --- rotate and claim ---------------------------------------------------------------

    def rotate(self) -> tuple[Replay | None, int]:
        """Rename the current file for replay; emitters start a new one meanwhile.

        Returns the claimed file and its event count, ``(None, 0)`` when there is
        nothing to claim, or ``(None, events)`` when the rename failed (those events
        stay on disk for a later monitor; a flush must not wait for them).
        """
        with self.lock:
            if self._file is None or self._file_events == 0:
                return None, 0
            self.close_file_locked()
            source = self._file
            target = source.with_name(source.name.removesuffix(SPILL_SUFFIX) + REPLAY_SUFFIX)
            events = self._file_events
            self._file = None
            self._file_events = 0
            try:
                size = source.stat().st_size
                source.rename(target)
            except OSError as exc:
                self.errors += 1
                log.error("voicewatch: cannot claim spill file %s (%s)", source, first_line(exc))
                return None, events
        return Replay(target, events, size), events

    def claim_orphans(self, live_instances: Iterable[str]) -> Iterator[Replay]:
        """Claim the files that no live monitor owns (a crashed or closed one's).

        ``live_instances`` are the instance names of this process's open monitors.
        Each file is taken by an atomic rename, so two monitors never replay one file.
        """
        if not self.directory.is_dir():
            return
        live_here = set(live_instances)
        for path in sorted(self.directory.glob("*.jsonl")):
            parts = path.name.split("-", 2)
            if len(parts) != 3 or not parts[0].isdigit():
                continue
            pid, instance = int(parts[0]), parts[1]
            if pid == os.getpid() and instance in live_here:
                continue
            if pid != os.getpid() and pid_alive(pid):
                continue
            target = self.directory / (
                f"{os.getpid()}-{self.instance}-o{uuid.uuid4().hex[:8]}{REPLAY_SUFFIX}"
            )
            try:
                size = path.stat().st_size
                path.rename(target)  # atomic: if another monitor won the race, skip it
            except OSError:
                continue
            log.warning("voicewatch: replaying %s, left by an earlier monitor", path.name)
            yield Replay(target, 0, size)

    # --- replay (the writer thread) ---------------------------------------------------------

    def open_replay(self, replay: Replay) -> bool:
        """Open a claimed file for reading; False (and counted) if it cannot be read."""
        try:
            replay.handle = open(replay.path, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            self.errors += 1
            log.error("voicewatch: cannot read spill file %s (%s)", replay.path, exc)
            return False
        return True

    def read_batch(self, replay: Replay, batch_size: int) -> list[Any]:
        """Up to ``batch_size`` events from an open file; marks it finished at its end."""
        assert replay.handle is not None
        batch: list[Any] = []
        while len(batch) < batch_size:
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
                self.errors += 1
                log.warning("voicewatch: skipped an unreadable line in %s", replay.path.name)
        return batch

    def finish_replay(self, replay: Replay) -> None:
        """Close and delete a replayed file, and give its bytes back to the budget."""
        if replay.handle is not None:
            replay.handle.close()
        try:
            replay.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.errors += 1
            log.error("voicewatch: cannot delete replayed file %s (%s)", replay.path, exc)
        if replay.own_events:
            with self.lock:
                self.bytes = max(0, self.bytes - replay.size)
