"""Group commit: concurrent ingest requests share a transaction, each gets its own answer."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from factories import make_event, make_traffic
from recount import assert_counters_equal_recount, stored_event_ids
from voicewatch.events import log_events
from voicewatch.store import make_engine, migrate
from voicewatch.validation import validate_event
from voicewatch.web.errors import ApiError
from voicewatch.web.group_commit import GroupCommit, _Job, split_result
from voicewatch.web.write_gate import WriteGate


def _sqlite(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    migrate(engine)
    return engine


def test_each_request_gets_its_share_as_if_written_alone(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    a, b, c, d = (make_event("artifact_received", 1_767_225_600_000 + i) for i in range(4))
    log_events(engine, [d])  # stored before: a duplicate for whoever sends it
    requests: list[list[Any]] = [
        [a, {"event_type": "nope"}, b, a],  # bad item at 1, repeat of a at 3
        [b, c, "not an event"],  # b already sent by the first request
        [d, c],
    ]
    combined = [item for request in requests for item in request]
    result = log_events(engine, combined)
    shares = split_result(result, combined, [len(r) for r in requests])
    assert [(s.accepted, s.duplicates, [r.index for r in s.rejected]) for s in shares] == [
        (2, 1, [1]),
        (1, 1, [2]),
        (0, 2, []),
    ]
    assert sorted(shares[0].accepted_ids) == sorted([a["event_id"], b["event_id"]])
    assert shares[1].accepted_ids == [c["event_id"]]
    assert shares[0].rejected[0].error == result.rejected[0].error


def test_requests_queued_behind_a_writer_land_in_one_transaction(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    gate = WriteGate(engine, timeout_s=30)
    group = GroupCommit(engine, gate)
    transactions = 0
    write = group._write

    def counted(jobs: Any) -> None:
        nonlocal transactions
        transactions += 1
        write(jobs)

    group._write = counted  # type: ignore[method-assign]
    traffic = make_traffic(40, rng=3)
    requests = [traffic[i : i + 50] for i in range(0, len(traffic), 50)]
    requests += [traffic[:50], traffic[100:150]]  # two requests resent whole
    answers: dict[int, Any] = {}

    def send(n: int) -> None:
        answers[n] = group.store(requests[n])

    assert gate._lock is not None
    gate._lock.acquire()  # a write in progress: every request queues behind it
    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group._pending) < len(requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate._lock.release()
    for thread in threads:
        thread.join(timeout=30)

    events_sent = sum(len(r) for r in requests)
    assert len(answers) == len(requests)
    assert transactions == -(-events_sent // 5000)  # all of them in as few as the cap allows
    assert sum(a.accepted for a in answers.values()) == len(traffic)
    assert sum(a.duplicates for a in answers.values()) == 100
    for n, answer in answers.items():
        assert answer.accepted + answer.duplicates == len(requests[n])
        assert not answer.rejected
    ids = stored_event_ids(engine)
    assert len(ids) == len(set(ids)) == len(traffic)
    assert_counters_equal_recount(engine)


def test_a_failed_group_fails_every_request_in_it_and_stores_nothing(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    gate = WriteGate(engine, timeout_s=30)
    group = GroupCommit(engine, gate)
    engine.dispose()
    (tmp_path / "g.db").unlink()
    (tmp_path / "g.db").mkdir()  # the store can no longer be opened
    errors: list[BaseException] = []

    def send() -> None:
        try:
            group.store([make_event("artifact_received", 1_767_225_600_000)])
        except Exception as exc:
            errors.append(exc)

    assert gate._lock is not None
    gate._lock.acquire()
    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group._pending) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    gate._lock.release()
    for thread in threads:
        thread.join(timeout=30)
    assert len(errors) == 3
    assert group._pending == []


def test_a_request_that_waits_past_the_busy_timeout_is_withdrawn(tmp_path: Path) -> None:
    """Told 503, the request must not be written later by another request's group."""
    engine = _sqlite(tmp_path)
    gate = WriteGate(engine, timeout_s=0.2)
    group = GroupCommit(engine, gate)
    assert gate._lock is not None
    gate._lock.acquire()  # another writer holds on for longer than the timeout
    with pytest.raises(ApiError) as info:
        group.store([make_event("artifact_received", 1_767_225_600_000)])
    assert info.value.status_code == 503
    assert group._pending == []
    gate._lock.release()
    later = group.store([make_event("artifact_received", 1_767_225_600_001)])
    assert later.accepted == 1
    assert len(stored_event_ids(engine)) == 1  # only the later one


def test_checked_rows_keep_their_request_s_indexes_in_a_group(tmp_path: Path) -> None:
    """A request's ``checked`` indexes (rows valid already) move with its offset in the group."""
    engine = _sqlite(tmp_path)
    group = GroupCommit(engine, WriteGate(engine, timeout_s=30))
    first = _Job([make_event("artifact_received", 1_767_225_600_000), {"event_type": "nope"}])
    rows = [validate_event(make_event("artifact_received", 1_767_225_600_001 + i)) for i in (0, 1)]
    second = _Job([make_event("artifact_received", 1_767_225_600_005), *rows], checked={1, 2})
    group._write([first, second])
    assert first.error is None and second.error is None
    assert first.result is not None and second.result is not None
    assert (first.result.accepted, [r.index for r in first.result.rejected]) == (1, [1])
    assert (second.result.accepted, second.result.rejected) == (3, [])
    assert sorted(stored_event_ids(engine)) == sorted(
        [*first.result.accepted_ids, *second.result.accepted_ids]
    )
