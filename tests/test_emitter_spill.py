"""The emitter's spill file on its own, without a monitor or a thread: append, rotate,
replay, claim orphans, the disk budget and a torn last line.

The monitor-level behaviour (spilling during an outage, replay by the next monitor) is
in ``test_emitter.py`` and ``test_emitter_outage.py``; here each step is driven directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voicewatch.emitter.spill import (
    REPLAY_SUFFIX,
    SPILL_SUFFIX,
    Replay,
    SpillFile,
    destination_key,
    pid_alive,
)


def lines_of(*ids: str) -> list[str]:
    return [json.dumps({"event_id": i, "event_type": "artifact_received"}) + "\n" for i in ids]


def spill_in(directory: Path, instance: str = "aaaaaaaaaaaa", **kwargs: object) -> SpillFile:
    options: dict[str, object] = {"max_bytes": 1 << 20, "queue_limit": 10}
    options.update(kwargs)
    return SpillFile(directory, instance, **options)  # type: ignore[arg-type]


def append(spill: SpillFile, *ids: str) -> bool:
    with spill.lock:
        return spill.append_locked(lines_of(*ids), len(ids))


def replay_all(spill: SpillFile, replay: Replay, batch_size: int) -> list[list[str]]:
    """Every batch of a claimed file's event ids, then the file finished and deleted."""
    assert spill.open_replay(replay)
    batches: list[list[str]] = []
    while not replay.finished:
        batch = spill.read_batch(replay, batch_size)
        if batch:
            batches.append([e["event_id"] for e in batch])
    spill.finish_replay(replay)
    return batches


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


def test_append_rotate_replay_keeps_every_event_in_order_and_frees_the_budget(
    tmp_path: Path,
) -> None:
    spill = spill_in(tmp_path / "dest")
    assert append(spill, "e1", "e2") and append(spill, "e3")
    assert (spill.total, spill.unclaimed_events, spill.dropped) == (3, 3, 0)
    assert spill.bytes == sum(len(line) for line in lines_of("e1", "e2", "e3"))
    spill.flush()
    [current] = list((tmp_path / "dest").iterdir())
    assert current.name.startswith(f"{os.getpid()}-aaaaaaaaaaaa-")
    assert current.name.endswith(SPILL_SUFFIX)
    assert current.read_text(encoding="utf-8") == "".join(lines_of("e1", "e2", "e3"))

    replay, events = spill.rotate()
    assert replay is not None and events == 3 and replay.own_events == 3
    assert replay.path.name.endswith(REPLAY_SUFFIX) and not current.exists()
    assert spill.unclaimed_events == 0
    assert spill.rotate() == (None, 0)  # nothing new to claim

    assert replay_all(spill, replay, batch_size=2) == [["e1", "e2"], ["e3"]]
    assert not replay.path.exists()
    assert spill.bytes == 0 and spill.total == 3 and spill.errors == 0


def test_events_spilled_during_a_replay_go_to_a_new_file(tmp_path: Path) -> None:
    spill = spill_in(tmp_path)
    append(spill, "old1", "old2")
    replay, _ = spill.rotate()
    assert replay is not None
    assert spill.open_replay(replay)
    assert [e["event_id"] for e in spill.read_batch(replay, 1)] == ["old1"]
    append(spill, "new1")  # while the claimed file is being read
    spill.flush()
    assert [e["event_id"] for e in spill.read_batch(replay, 10)] == ["old2"]
    spill.read_batch(replay, 10)
    assert replay.finished
    spill.finish_replay(replay)
    second, events = spill.rotate()
    assert second is not None and events == 1 and second.path != replay.path
    assert replay_all(spill, second, batch_size=10) == [["new1"]]
    assert list(tmp_path.iterdir()) == []


def test_past_the_disk_budget_events_are_dropped_and_counted(tmp_path: Path) -> None:
    one_line = len(lines_of("e0")[0])
    spill = spill_in(tmp_path, max_bytes=2 * one_line)
    assert append(spill, "e0") and append(spill, "e1")
    assert not append(spill, "e2")
    assert not append(spill, "e3", "e4")
    assert (spill.total, spill.dropped) == (2, 3)
    replay, _ = spill.rotate()
    assert replay is not None
    assert replay_all(spill, replay, batch_size=10) == [["e0", "e1"]]
    assert append(spill, "e5")  # the replayed bytes are back in the budget
    assert spill.dropped == 3


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    spill = spill_in(tmp_path)
    append(spill, "e1", "e2")
    spill.flush()
    [path] = list(tmp_path.iterdir())
    with path.open("a", encoding="utf-8") as handle:
        handle.write('\n{"event_id": "e3", "event_ty')  # a crash mid-write, and a blank line
    replay, _ = spill.rotate()
    assert replay is not None
    assert replay_all(spill, replay, batch_size=10) == [["e1", "e2"]]
    assert spill.errors == 1


def test_a_closed_spill_file_is_whole_on_disk_after_each_append(tmp_path: Path) -> None:
    spill = spill_in(tmp_path)
    with spill.lock:
        spill.closed = True
        spill.close_file_locked()
    append(spill, "late1")
    append(spill, "late2")
    [path] = list(tmp_path.iterdir())  # no flush: each append closed the file
    assert path.read_text(encoding="utf-8") == "".join(lines_of("late1", "late2"))


def test_orphans_are_claimed_once_and_live_owners_keep_their_files(tmp_path: Path) -> None:
    me = os.getpid()
    gone = dead_pid()
    files = {
        "dead": f"{gone}-bbbbbbbbbbbb-000001{SPILL_SUFFIX}",
        "dead_replay": f"{gone}-bbbbbbbbbbbb-o1234abcd{REPLAY_SUFFIX}",
        "closed_here": f"{me}-cccccccccccc-000001{SPILL_SUFFIX}",
        "live_here": f"{me}-dddddddddddd-000001{SPILL_SUFFIX}",
        "live_parent": f"{os.getppid()}-eeeeeeeeeeee-000001{SPILL_SUFFIX}",
        "not_ours": "notes.jsonl",
    }
    for n, name in enumerate(files.values()):
        (tmp_path / name).write_text("".join(lines_of(f"x{n}")), encoding="utf-8")

    claimer = spill_in(tmp_path, instance="ffffffffffff")
    claimed = list(claimer.claim_orphans(["dddddddddddd"]))
    assert len(claimed) == 3
    left = {p.name for p in tmp_path.iterdir() if not p.name.startswith(f"{me}-ffffffffffff-")}
    assert left == {files["live_here"], files["live_parent"], files["not_ours"]}
    assert all(r.own_events == 0 and r.path.name.endswith(REPLAY_SUFFIX) for r in claimed)
    replayed = sorted(i for r in claimed for b in replay_all(claimer, r, 10) for i in b)
    assert replayed == ["x0", "x1", "x2"]
    assert claimer.bytes == 0  # another monitor's files never counted against this budget

    # A second monitor finds nothing more to take (the claimed files were renamed away).
    assert list(spill_in(tmp_path, instance="gggggggggggg").claim_orphans(["dddddddddddd"])) == []


def test_a_missing_directory_has_no_orphans(tmp_path: Path) -> None:
    assert list(spill_in(tmp_path / "never-made").claim_orphans([])) == []


def test_the_destination_key_names_one_destination_however_it_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = destination_key("sqlite:///vw.db", None, None)
    absolute = destination_key(f"sqlite:///{tmp_path / 'vw.db'}", None, None)
    assert relative == absolute
    assert destination_key(None, None, "http://h:8000/") == destination_key(
        None, None, "http://h:8000"
    )
    assert destination_key("sqlite:///other.db", None, None) != relative
