"""The longest write transaction of this process, and who made it.

On SQLite a write transaction holds the one write lock from ``BEGIN
IMMEDIATE`` to its commit, and every other writer (in any process) waits
behind it, up to the busy timeout. So the longest write transaction of each
process is the figure that says whether a writer can be starved: the load test
(``bench/bench_load.py``) prints it per process.

``write_transaction`` reports each transaction here (time from holding the
lock to the end of the commit, ms). When ``VOICEWATCH_WRITE_STATS_DIR`` is set,
each new longest one is written to ``<dir>/<process>-<pid>.json`` at once
(a handful of small writes in a process's life), so the figure survives
however the process ends.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from voicewatch.config import write_stats_dir

_lock = threading.Lock()
_longest: dict[str, Any] = {"ms": 0.0, "where": "", "count": 0}


def _guess_process() -> str:
    """``serve`` for ``voicewatch serve ...``: the first word after the program's name."""
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    return words[0] if words else (Path(sys.argv[0]).name or "python")


_process = _guess_process()


def name_process(name: str) -> None:
    """Name this process in the stats file (``serve``, ``worker``, ``simulate``...)."""
    global _process
    _process = name


def record(held_ms: float, where: str) -> None:
    """One write transaction held the lock for ``held_ms`` ms; ``where`` made it."""
    with _lock:
        _longest["count"] += 1
        if held_ms <= _longest["ms"]:
            return
        _longest["ms"] = held_ms
        _longest["where"] = where
        snapshot = dict(_longest)
    _save(snapshot)


def longest() -> dict[str, Any]:
    """``{"ms": ..., "where": ..., "count": ...}`` for this process so far."""
    with _lock:
        return dict(_longest)


def reset() -> None:
    with _lock:
        _longest.update(ms=0.0, where="", count=0)


def _save(snapshot: dict[str, Any]) -> None:
    directory = write_stats_dir()
    if not directory:
        return
    try:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        target = path / f"{_process}-{os.getpid()}.json"
        scratch = target.with_suffix(f".{threading.get_ident()}.tmp")
        scratch.write_text(json.dumps({"process": _process, "pid": os.getpid(), **snapshot}))
        scratch.replace(target)
    except OSError:  # a figure for the load test must never fail a write
        pass


def read_dir(directory: Path) -> list[dict[str, Any]]:
    """Every process's figure saved under ``directory`` (for the load test's report)."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out
