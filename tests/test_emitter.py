"""The SDK (``voicewatch.emitter``) against real stores: SQLite files, PostgreSQL, a live server.

Outages and spilling are in ``test_emitter_outage.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import LiveServer
from voicewatch.clock import now_ms
from voicewatch.emitter import Monitor
from voicewatch.store import make_engine
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t

TYPES = (
    "artifact_received",
    "transcription_started",
    "transcription_completed",
    "claims_extracted",
    "artifact_completed",
)


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[Callable[..., Monitor]]:
    """Make monitors that spill under ``tmp_path``; every one is closed after the test."""
    made: list[Monitor] = []

    def make(*args: Any, **kwargs: Any) -> Monitor:
        kwargs.setdefault("spill_dir", tmp_path / "spill")
        monitor = Monitor(*args, **kwargs)
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.close(timeout=2)


def stored_events(url: str, **where: str) -> list[dict[str, Any]]:
    engine = make_engine(url, pool=False)
    try:
        query = select(events_t)
        for column, value in where.items():
            query = query.where(events_t.c[column] == value)
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


def counter_totals(url: str, scope: str = PLATFORM) -> dict[str, int]:
    """Per counter type, the sum over all minute buckets (what the live figures read)."""
    engine = make_engine(url, pool=False)
    try:
        query = (
            select(counters_t.c.counter_type, func.sum(counters_t.c.count))
            .where(counters_t.c.scope == scope)
            .group_by(counters_t.c.counter_type)
        )
        with engine.connect() as conn:
            return {name: int(total) for name, total in conn.execute(query)}
    finally:
        engine.dispose()


class FakeTime:
    """A clock (epoch ms) and a timer (seconds) that move only when told to."""

    def __init__(self) -> None:
        self.seconds = 1_000.0
        self.epoch_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z

    def clock(self) -> int:
        return self.epoch_ms

    def timer(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.epoch_ms += round(seconds * 1000)


# --- delivery -----------------------------------------------------------------------------------


def test_emitted_events_land_exactly_once_and_counters_match(
    db_url: str, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(database_url=db_url)
    start = now_ms() - 600_000
    sent: dict[str, str] = {}  # event_id -> event_type
    for i in range(2_500):
        event_type = TYPES[i % len(TYPES)]
        event_id = monitor.emit(
            event_type,
            artifact_id=f"art_{i % 300}",
            organization_id=f"org_{i % 3}",
            timestamp=start + i * 100,
            duration_ms=float(i % 7),
            metadata={"claim_count": i % 5} if event_type == "claims_extracted" else None,
        )
        assert event_id is not None
        sent[event_id] = event_type
    # The same ids again (a pipeline re-emitting after a crash): ignored by the store.
    again = list(sent.items())[::5]
    for event_id, event_type in again:
        monitor.emit(event_type, event_id=event_id, timestamp=start, organization_id="org_0")

    assert monitor.flush(timeout=30)
    rows = stored_events(db_url)
    ids = Counter(r["event_id"] for r in rows)
    assert set(ids) == set(sent)
    assert max(ids.values()) == 1
    expected = Counter(sent.values())
    totals = counter_totals(db_url)
    assert {t: totals.get(t, 0) for t in TYPES} == dict(expected)
    assert sum(r["claim_count"] or 0 for r in rows) == sum(
        int(i % 5) for i in range(2_500) if TYPES[i % len(TYPES)] == "claims_extracted"
    )
    stats = monitor.stats()
    assert stats["emitted"] == 2_500 + len(again)
    assert stats["written"] == 2_500
    assert stats["duplicates"] == len(again)
    assert (stats["rejected"], stats["dropped"], stats["errors"], stats["queue_depth"]) == (
        0,
        0,
        0,
        0,
    )
    assert monitor.close(timeout=10)


def test_close_drains_what_is_queued(db_url: str, monitors: Callable[..., Monitor]) -> None:
    monitor = monitors(database_url=db_url, flush_interval=5.0)  # no timed flush would help
    ids = {monitor.emit("artifact_received", organization_id="org_a") for _ in range(1_234)}
    assert monitor.close(timeout=30)
    assert {r["event_id"] for r in stored_events(db_url)} == ids
    assert monitor.stats()["written"] == 1_234


def test_generated_ids_are_unique_uuid_shaped_and_timestamps_come_from_the_clock(
    sqlite_url: str, monitors: Callable[..., Monitor]
) -> None:
    fake = FakeTime()
    first = monitors(database_url=sqlite_url, clock=fake.clock)
    second = monitors(database_url=sqlite_url, clock=fake.clock)
    ids = [first.emit("artifact_received") for _ in range(15_000)]
    ids += [second.emit("artifact_received") for _ in range(15_000)]
    assert len(set(ids)) == 30_000
    assert all(str(uuid.UUID(i)) == i for i in ids[::97])
    assert first.flush(timeout=30) and second.flush(timeout=30)
    rows = stored_events(sqlite_url)
    assert len(rows) == 30_000
    assert {r["timestamp"] for r in rows} == {fake.epoch_ms}


def test_the_caller_keeps_ownership_of_its_metadata(
    sqlite_url: str, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(database_url=sqlite_url)
    metadata = {"claim_count": 3}
    event_id = monitor.emit("claims_extracted", metadata=metadata, artifact_id="art_1")
    metadata["claim_count"] = 99  # changed after emit(): the event keeps what it was given
    assert monitor.flush(timeout=10)
    (row,) = stored_events(sqlite_url, event_id=str(event_id))
    assert row["claim_count"] == 3


# --- stage() -----------------------------------------------------------------------------------


def test_stage_success_emits_started_then_completed_with_duration_and_metadata(
    db_url: str, monitors: Callable[..., Monitor]
) -> None:
    fake = FakeTime()
    monitor = monitors(database_url=db_url, clock=fake.clock, timer=fake.timer)
    with monitor.stage(
        "claims_extraction",
        artifact_id="art_s",
        organization_id="org_s",
        coach_user_id="coach_1",
        metadata={"retry_attempt": 1},
    ) as st:
        fake.advance(0.25)
        st.set(claim_count=4)
        st.metadata["confidence_score"] = 0.75
    assert st.duration_ms == 250.0
    assert monitor.flush(timeout=10)
    rows = sorted(stored_events(db_url, artifact_id="art_s"), key=lambda r: r["timestamp"])
    assert [r["event_type"] for r in rows] == ["claims_extraction_started", "claims_extracted"]
    started, completed = rows
    assert started["pipeline_stage"] == completed["pipeline_stage"] == "claims_extraction"
    assert started["coach_user_id"] == completed["coach_user_id"] == "coach_1"
    assert started["retry_attempt"] == completed["retry_attempt"] == 1
    assert started["duration_ms"] is None and started["claim_count"] is None
    assert completed["duration_ms"] == 250.0
    assert completed["stage_completed_at"] - completed["stage_started_at"] == 250
    assert (completed["claim_count"], completed["confidence_score"]) == (4, 0.75)
    assert completed["error_message"] is None
    totals = counter_totals(db_url, scope="org_s")
    assert totals["claims_extraction_started"] == totals["claims_extracted"] == 1


def test_stage_can_complete_as_the_alternative_event(
    sqlite_url: str, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(database_url=sqlite_url)
    with monitor.stage("entity_resolution", artifact_id="art_d", event_id="art_d.0.er") as st:
        st.completed_event = "entity_needs_disambiguation"
        st.set(entity_count=3, disambiguation_count=1)
    assert monitor.flush(timeout=10)
    rows = {r["event_id"]: r for r in stored_events(sqlite_url, artifact_id="art_d")}
    assert set(rows) == {
        "art_d.0.er.entity_resolution_started",
        "art_d.0.er.entity_needs_disambiguation",
    }
    assert rows["art_d.0.er.entity_needs_disambiguation"]["disambiguation_count"] == 1


class ProviderDown(RuntimeError):
    error_code = "provider_timeout"


def test_stage_failure_emits_failed_and_reraises_the_same_exception(
    db_url: str, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(database_url=db_url)
    error = ProviderDown("whisper timed out after 30 s")
    with (
        pytest.raises(ProviderDown) as raised,
        monitor.stage("transcription", artifact_id="art_f", organization_id="org_f") as st,
    ):
        st.set(transcript_duration=12.5)
        raise error
    assert raised.value is error
    assert raised.traceback[-1].name.startswith("test_stage_failure")  # raised here, untouched

    long_message = "x" * 5_000
    with (
        pytest.raises(ValueError) as raised_again,
        monitor.stage("entity_resolution", artifact_id="art_f", organization_id="org_f"),
    ):
        raise ValueError(long_message)
    assert str(raised_again.value) == long_message

    assert monitor.flush(timeout=10)
    rows = {r["event_type"]: r for r in stored_events(db_url, artifact_id="art_f")}
    assert set(rows) == {
        "transcription_started",
        "transcription_failed",
        "entity_resolution_started",
        "artifact_failed",
    }
    failed = rows["transcription_failed"]
    assert failed["error_message"] == "whisper timed out after 30 s"
    assert failed["error_code"] == "provider_timeout"
    assert failed["duration_ms"] is not None and failed["duration_ms"] >= 0
    assert failed["transcript_duration"] == 12.5
    artifact_failed = rows["artifact_failed"]
    assert artifact_failed["pipeline_stage"] == "entity_resolution"
    assert artifact_failed["error_code"] == "ValueError"
    assert artifact_failed["error_message"] == "x" * 4_000
    assert monitor.stats()["rejected"] == 0


def test_stage_with_an_unknown_name_runs_the_block_unmonitored(
    sqlite_url: str, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(database_url=sqlite_url)
    ran = []
    with monitor.stage("no_such_stage", artifact_id="art_u"):
        ran.append(True)
    with pytest.raises(KeyError), monitor.stage(["not", "hashable"], artifact_id="art_u"):  # type: ignore[arg-type]
        raise KeyError("still the caller's")
    assert ran == [True]
    assert monitor.flush(timeout=10)
    assert stored_events(sqlite_url, artifact_id="art_u") == []
    assert monitor.stats()["errors"] == 2


# --- never raises ---------------------------------------------------------------------------


class BrokenMapping:
    def keys(self) -> list[str]:
        raise RuntimeError("broken mapping")


GARBAGE: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((None,), {}),
    ((123,), {}),
    (("no_such_type",), {}),
    (("artifact_received",), {"metadata": "not a dict"}),
    (("artifact_received",), {"metadata": BrokenMapping()}),
    (("artifact_received",), {"metadata": {"claim_count": -1}}),
    (("artifact_received",), {"timestamp": "yesterday"}),
    (("artifact_received",), {"timestamp": 1_700_000_000}),  # seconds, not ms
    (("artifact_received",), {"no_such_field": object()}),
    (("artifact_received",), {"duration_ms": float("nan")}),
    (("artifact_received",), {"event_id": ["not", "a", "string"]}),
    (("artifact_received",), {"artifact_id": "x" * 10_000}),
    (("artifact_received",), {"artifact_id": "poison \ud800"}),  # the driver cannot encode it
]


def test_emit_never_raises_on_garbage_and_the_good_events_still_land(
    db_url: str, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(database_url=db_url)
    good = []
    for args, kwargs in GARBAGE:
        monitor.emit(*args, **kwargs)
        good.append(monitor.emit("artifact_received", organization_id="org_g"))
    assert monitor.emit("artifact_received", "an extra positional argument") is None
    assert monitor.flush(timeout=30)
    assert {r["event_id"] for r in stored_events(db_url)} == set(good)
    stats = monitor.stats()
    assert stats["written"] == len(good)
    assert stats["rejected"] == len(GARBAGE)
    assert stats["errors"] == 1  # the extra positional argument
    assert stats["retries"] == 0  # invalid events are never retried
    assert stats["emitted"] == len(good) + len(GARBAGE)


def test_emit_never_raises_with_a_broken_clock(
    sqlite_url: str, monitors: Callable[..., Monitor]
) -> None:
    def clock() -> int:
        raise OSError("no time today")

    monitor = monitors(database_url=sqlite_url, clock=clock)
    assert monitor.emit("artifact_received") is None
    assert monitor.emit("artifact_received", timestamp=now_ms()) is not None
    with monitor.stage("transcription", artifact_id="art_c"):
        pass
    assert monitor.flush(timeout=10)
    assert len(stored_events(sqlite_url)) == 1
    assert monitor.stats()["errors"] >= 2


@pytest.mark.parametrize(
    "destination",
    [
        {"database_url": "postgresql://nobody@127.0.0.1:1/nothing"},
        {"database_url": "nonsense://what"},
        {"endpoint": "http://127.0.0.1:1", "token": "vw_nothing"},
    ],
    ids=["postgres-refused", "bad-url", "http-refused"],
)
def test_emit_never_raises_or_blocks_when_the_store_is_unreachable(
    destination: dict[str, str], monitors: Callable[..., Monitor], tmp_path: Path
) -> None:
    monitor = monitors(**destination, retry_delay=0.01, max_retry_delay=0.05)
    took = []
    for i in range(2_000):
        began = time.perf_counter_ns()
        monitor.emit("artifact_received", artifact_id=f"art_{i}")
        took.append(time.perf_counter_ns() - began)
    # Not one connection attempt on the caller's thread: even a refused one costs
    # more than this. (In a tight loop the max also holds a GIL hand-over to the
    # busy writer, up to the 5 ms switch interval, so the max is not the measure.)
    assert sorted(took)[int(len(took) * 0.99)] < 200_000
    assert sum(took) < 200_000_000
    assert not monitor.flush(timeout=0.5)
    assert monitor.stats()["retries"] >= 1
    assert monitor.stats()["written"] == 0
    # Closing gives up in time and keeps every event on disk for a later monitor.
    began = time.perf_counter()
    assert not monitor.close(timeout=0.5)
    assert time.perf_counter() - began < 5
    monitor.emit("artifact_received", artifact_id="after_close")  # closed: still no error
    kept = [
        json.loads(line)
        for path in monitor.spill_path.glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(kept) == 2_001
    stats = monitor.stats()
    assert (stats["emitted"], stats["spilled"], stats["dropped"]) == (2_001, 2_001, 0)


def test_only_when_spilling_fails_are_events_dropped_and_then_counted(
    monitors: Callable[..., Monitor],
) -> None:
    monitor = monitors(
        database_url="postgresql://nobody@127.0.0.1:1/nothing",
        max_queue=5,
        max_spill_bytes=2_000,  # room for a dozen events on disk, no more
    )
    ids = [monitor.emit("artifact_received", organization_id="org_x") for _ in range(100)]
    assert all(ids)
    stats = monitor.stats()
    assert stats["emitted"] == 100
    assert 0 < stats["spilled"] < 20
    assert stats["dropped"] > 70
    in_memory = 100 - stats["spilled"] - stats["dropped"]
    assert 5 <= in_memory <= 5 + 1  # the queue, plus the one batch the writer holds


def test_events_emitted_after_close_are_kept_and_replayed_by_the_next_monitor(
    db_url: str, monitors: Callable[..., Monitor]
) -> None:
    first = monitors(database_url=db_url)
    before = first.emit("artifact_received", organization_id="org_c")
    assert first.close(timeout=10)
    after = [first.emit("artifact_completed", organization_id="org_c") for _ in range(3)]
    assert all(after)
    assert first.stats()["spilled"] == 3
    second = monitors(database_url=db_url)  # same destination, same spill directory
    assert second.flush(timeout=10)
    assert {r["event_id"] for r in stored_events(db_url)} == {before, *after}
    assert list(second.spill_path.glob("*.jsonl")) == []


def _emit_in_forked_child(monitor: Monitor, count: int) -> None:
    for _ in range(count):
        monitor.emit("artifact_received", organization_id="org_child")
    os._exit(0 if monitor.close(timeout=30) else 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_ids_queue_and_writer(
    sqlite_url: str, monitors: Callable[..., Monitor]
) -> None:
    import multiprocessing

    monitor = monitors(database_url=sqlite_url)
    parent_ids = {monitor.emit("artifact_received", organization_id="org_parent")}
    child = multiprocessing.get_context("fork").Process(
        target=_emit_in_forked_child, args=(monitor, 500)
    )
    child.start()
    parent_ids |= {
        monitor.emit("artifact_received", organization_id="org_parent") for _ in range(499)
    }
    child.join(timeout=60)
    assert child.exitcode == 0
    assert monitor.flush(timeout=30)
    assert {r["event_id"] for r in stored_events(sqlite_url, organization_id="org_parent")} == (
        parent_ids
    )
    child_rows = stored_events(sqlite_url, organization_id="org_child")
    assert len(child_rows) == 500  # none lost, none taken for a parent's id
    assert monitor.stats()["written"] == 500


# --- two processes, the same ids -------------------------------------------------------------

_TWIN = r"""
import json, os, sys, time
from voicewatch.emitter import Monitor

url, ready, go, spill, base = sys.argv[1:5] + [int(sys.argv[5])]
types = ["artifact_received", "transcription_started", "transcription_completed",
         "artifact_completed"]
monitor = Monitor(database_url=url, spill_dir=spill, batch_size=100)
events = [
    dict(event_id=f"twin-{i:04d}", event_type=types[i % 4], timestamp=base + i * 50,
         organization_id=f"org_{i % 2}", artifact_id=f"art_{i % 100}", duration_ms=float(i % 9))
    for i in range(1000)
]
open(ready, "w").close()
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.001)
for event in events:
    monitor.emit(event.pop("event_type"), **event)
ok = monitor.close(timeout=60)
print(json.dumps({"ok": ok, **monitor.stats()}))
"""


def test_two_processes_emitting_the_same_ids_store_each_once(db_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    base = now_ms() - 3_600_000
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TWIN,
                db_url,
                str(tmp_path / f"ready{n}"),
                str(go),
                str(tmp_path / f"spill{n}"),
                str(base),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{n}").exists() for n in range(2)):
        assert time.monotonic() < deadline, "the emitting processes did not start"
        assert all(child.poll() is None for child in children), children[0].stderr
        time.sleep(0.01)
    go.touch()  # both interpreters are up: start together
    reports = []
    for child in children:
        out, err = child.communicate(timeout=90)
        assert child.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["ok"] for r in reports), reports
    assert [r["emitted"] for r in reports] == [1_000, 1_000]
    assert sum(r["written"] for r in reports) == 1_000
    assert sum(r["duplicates"] for r in reports) == 1_000
    rows = stored_events(db_url)
    assert len(rows) == 1_000
    assert {r["event_id"] for r in rows} == {f"twin-{i:04d}" for i in range(1_000)}
    totals = counter_totals(db_url)
    assert {
        t: totals.get(t, 0)
        for t in (
            "artifact_received",
            "transcription_started",
            "transcription_completed",
            "artifact_completed",
        )
    } == {
        "artifact_received": 250,
        "transcription_started": 250,
        "transcription_completed": 250,
        "artifact_completed": 250,
    }
    assert counter_totals(db_url, scope="org_0")["artifact_received"] == 250
    assert sum(counter_totals(db_url, scope="org_1").values()) >= 500


# --- endpoint mode -----------------------------------------------------------------------------


def test_endpoint_mode_delivers_over_http_and_counts_rejections(
    live_server: LiveServer, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(endpoint=live_server.url, token=live_server.ingest_token)
    sent = {monitor.emit(TYPES[i % 5], organization_id="org_h") for i in range(3_000)}
    for _ in range(5):
        monitor.emit("no_such_type", organization_id="org_h")
    monitor.emit("artifact_received", artifact_id=object())  # not JSON: rejected locally
    with monitor.stage("transcription", artifact_id="art_h", organization_id="org_h") as st:
        st.set(transcript_word_count=12)
    assert monitor.flush(timeout=30)
    stored = {r["event_id"] for r in stored_events_via(live_server)}
    assert sent <= stored and len(stored) == 3_002
    stats = monitor.stats()
    assert (stats["written"], stats["rejected"], stats["retries"]) == (3_002, 6, 0)
    assert monitor.close(timeout=10)


def stored_events_via(server: LiveServer) -> list[dict[str, Any]]:
    with server.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(events_t))]


def test_endpoint_mode_keeps_events_while_the_token_is_refused(
    live_server: LiveServer, monitors: Callable[..., Monitor]
) -> None:
    monitor = monitors(
        endpoint=live_server.url,
        token="vw_not-a-real-token",
        retry_delay=0.01,
        max_retry_delay=0.05,
    )
    for _ in range(10):
        assert monitor.emit("artifact_received") is not None
    assert not monitor.flush(timeout=1)
    stats = monitor.stats()
    assert stats["retries"] >= 2 and stats["written"] == 0 and stats["rejected"] == 0
    assert stored_events_via(live_server) == []
    assert not monitor.close(timeout=0.3)
    kept = sum(len(p.read_text().splitlines()) for p in monitor.spill_path.glob("*.jsonl"))
    assert kept == 10  # on disk for a monitor with a good token


def test_endpoint_mode_splits_a_batch_the_server_finds_too_large(
    sqlite_url: str, monitors: Callable[..., Monitor]
) -> None:
    server = LiveServer(sqlite_url, max_body_bytes=40_000)
    try:
        # The client's own limit is set high so that the server's 413 decides.
        monitor = monitors(
            endpoint=server.url, token=server.ingest_token, max_request_bytes=10_000_000
        )
        sent = {
            monitor.emit(
                "transcription_failed",
                error_message="timeout " * 40,
                error_code="provider_timeout",
                organization_id="org_big",
            )
            for _ in range(1_000)
        }
        assert monitor.flush(timeout=30)
        assert {r["event_id"] for r in stored_events_via(server)} == sent
        assert monitor.stats()["written"] == 1_000
        assert monitor.stats()["rejected"] == 0
    finally:
        server.stop()
