"""Transient store errors: told apart from the rest, retried with bounded backoff.

Real errors from real stores: SQLite's write lock held by another connection
past a short busy timeout, a PostgreSQL serialization failure between two
real transactions, a PostgreSQL port nobody listens on. Stage tasks run on
the real Huey queue (SQLite) in this process, so the retry is Huey's own.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from huey.consumer import Consumer
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from conftest import POSTGRES_URL, require_postgres
from voicewatch import event_queries, tasks, worker
from voicewatch.config import Settings
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.intake import submit_note
from voicewatch.simulate import seed_demo_clubs
from voicewatch.store import make_engine, write_transaction
from voicewatch.store.tables import organizations
from voicewatch.store.transient import Backoff, StoreBusy, is_transient, retrying


@contextmanager
def sqlite_write_lock(path: Path) -> Iterator[threading.Event]:
    """Hold SQLite's write lock (``BEGIN IMMEDIATE``) from another connection until
    the yielded event is set (or the block ends)."""
    release = threading.Event()
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        release.wait(60)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(10)
    try:
        yield release
    finally:
        release.set()
        holder.join(30)


def _locked_error(path: Path) -> OperationalError:
    engine = make_engine(f"sqlite:///{path}", busy_timeout_ms=50)
    try:
        with (
            sqlite_write_lock(path),
            pytest.raises(OperationalError) as caught,
            write_transaction(engine) as conn,
        ):
            conn.execute(text("SELECT 1"))
        return caught.value
    finally:
        engine.dispose()


def test_a_locked_sqlite_file_is_transient_and_bad_data_is_not(sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    locked = _locked_error(path)
    assert "database is locked" in str(locked)
    assert is_transient(locked)
    engine = make_engine(sqlite_url)
    row = {"organization_id": "org_x", "name": "X", "created_at": 1}
    with write_transaction(engine) as conn:
        conn.execute(organizations.insert().values(**row))
    with pytest.raises(IntegrityError) as duplicate, write_transaction(engine) as conn:
        conn.execute(organizations.insert().values(**row))
    assert not is_transient(duplicate.value)
    assert not is_transient(ValueError("database is locked"))  # words alone are not enough
    assert is_transient(StoreBusy("waited 5 s"))
    engine.dispose()


def test_postgresql_refused_connections_and_serialization_failures_are_transient() -> None:
    refused = make_engine("postgresql://postgres@127.0.0.1:1/none", pool=False)
    with pytest.raises(OperationalError) as down:
        refused.connect()
    assert is_transient(down.value)
    require_postgres()
    engine = make_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS transient_probe"))
        conn.execute(text("CREATE TABLE transient_probe (id int primary key, n int)"))
        conn.execute(text("INSERT INTO transient_probe VALUES (1, 0)"))
    first = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    second = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    try:
        first.begin()
        second.begin()
        second.execute(text("SELECT n FROM transient_probe")).all()  # its snapshot
        first.execute(text("UPDATE transient_probe SET n = 1 WHERE id = 1"))
        first.commit()
        with pytest.raises(OperationalError) as conflict:
            second.execute(text("UPDATE transient_probe SET n = 2 WHERE id = 1"))
        assert getattr(conflict.value.orig, "sqlstate", None) == "40001"
        assert is_transient(conflict.value)
    finally:
        first.close()
        second.close()
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE transient_probe"))
        engine.dispose()


def test_retrying_waits_out_a_lock_and_stops_at_once_on_other_errors(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    engine = make_engine(sqlite_url, busy_timeout_ms=50)
    quick = Backoff(retries=20, first_s=0.05, factor=1.5, max_s=0.2)
    tries: list[float] = []

    def write() -> None:
        tries.append(time.monotonic())
        with write_transaction(engine) as conn:
            conn.execute(
                organizations.insert().values(organization_id="org_y", name="Y", created_at=1)
            )

    caplog.set_level(logging.WARNING, "voicewatch.transient")
    with sqlite_write_lock(path) as release:
        threading.Timer(0.6, release.set).start()
        retrying(write, "add org_y", quick)
    assert len(tries) >= 3  # it really met the lock
    assert clubs.organization_exists(engine, "org_y")
    assert "add org_y: transient store error" in caplog.text and "database is locked" in caplog.text
    tries.clear()
    with pytest.raises(IntegrityError):
        retrying(write, "add org_y again", quick)
    assert len(tries) == 1  # a duplicate is not waited out
    with sqlite_write_lock(path), pytest.raises(OperationalError):
        retrying(write, "add org_z", Backoff(retries=2, first_s=0.01, max_s=0.01))
    assert len(tries) == 1 + 3  # spent: one try and two retries
    assert [Backoff().delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    engine.dispose()


# --- stage tasks on the real Huey queue --------------------------------------------------------


class CountingTranscriber:
    """The real offline transcriber, counting its calls (a stage runs once per attempt)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __call__(self, artifact: dict[str, Any], names: list[str]) -> Any:
        self.calls.append(artifact["artifact_id"])
        return self.inner(artifact, names)


@pytest.fixture
def queue_stack(tmp_path: Path) -> Iterator[tuple[Any, Path, CountingTranscriber]]:
    """A SQLite store (200 ms busy timeout), its Huey queue and one in-process consumer."""
    db = tmp_path / "vw.db"
    settings = Settings(database_url=f"sqlite:///{db}", sqlite_busy_timeout_ms=200)
    previous_queue = tasks._queue_url
    huey = tasks.use_queue(settings.queue_url)
    ctx = worker.build_context(settings)
    counting = CountingTranscriber(ctx.transcribe)
    ctx.transcribe = counting
    worker.install(settings, ctx)
    seed_demo_clubs(ctx.engine)
    consumer = Consumer(huey, workers=2, worker_type="thread", periodic=False, max_delay=0.2)
    consumer.start()
    try:
        yield ctx, db, counting
    finally:
        consumer.stop(graceful=True)
        ctx.monitor.close(timeout=10)
        tasks.use_queue(previous_queue)
        worker.uninstall()


def _status(engine: Engine, artifact_id: str) -> str:
    row = repo.get_artifact(engine, artifact_id)
    return str(row["status"]) if row else "missing"


def _wait_status(engine: Engine, artifact_id: str, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = _status(engine, artifact_id)
    while status not in wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        status = _status(engine, artifact_id)
    return status


def _note(ctx: Any) -> str:
    artifact = submit_note(
        ctx, organization_id="org_clg", coach_user_id="coach_clg_1", text="Sean hurt his ankle."
    )
    return str(artifact["artifact_id"])


def _stored_note(ctx: Any) -> str:
    """A note stored but not yet queued (so its task can be queued under a lock)."""
    artifact = repo.create_artifact(
        ctx.engine,
        organization_id="org_clg",
        coach_user_id="coach_clg_1",
        source_channel="app",
        text="Sean hurt his ankle.",
    )
    return str(artifact["artifact_id"])


def test_a_lock_before_the_claim_is_retried_by_the_queue(
    queue_stack: tuple[Any, Path, CountingTranscriber], caplog: pytest.LogCaptureFixture
) -> None:
    ctx, db, counting = queue_stack
    caplog.set_level(logging.INFO, "voicewatch")
    artifact_id = _stored_note(ctx)
    with sqlite_write_lock(db) as release:
        tasks.run_stage_task("transcription", artifact_id, 0)  # the queue file is not locked
        deadline = time.monotonic() + 30
        while "the queue retries it" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _status(ctx.engine, artifact_id) == "received"  # the claim waits
        release.set()
    assert _wait_status(ctx.engine, artifact_id, {"completed", "failed"}, 60) == "completed"
    assert f"transcription of {artifact_id} (attempt 0): transient store error" in caplog.text
    assert "database is locked" in caplog.text
    assert counting.calls == [artifact_id]  # transcribed once
    assert ctx.monitor.flush(timeout=30)
    kinds = [e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact_id)]
    assert kinds.count("transcription_completed") == 1 and kinds.count("drafts_generated") == 1


def test_a_lock_after_the_claim_is_retried_in_place_without_running_the_stage_again(
    queue_stack: tuple[Any, Path, CountingTranscriber], caplog: pytest.LogCaptureFixture
) -> None:
    ctx, db, counting = queue_stack
    # Claimed, then busy for 1.5 s: time enough to take the lock before its
    # transcript's transaction, even on a loaded machine.
    ctx.stage_delay_ms = {"transcription": 1500}
    caplog.set_level(logging.INFO, "voicewatch")
    artifact_id = _note(ctx)
    assert _wait_status(ctx.engine, artifact_id, {"transcribing"}, 30) == "transcribing"
    with sqlite_write_lock(db) as release:  # the transcript's transaction meets it
        threading.Timer(2.5, release.set).start()
        assert _wait_status(ctx.engine, artifact_id, {"completed", "failed"}, 60) == "completed"
    assert f"{artifact_id} (attempt 0): store the transcript: transient store error" in caplog.text
    assert "the queue retries it" not in caplog.text  # never back to the queue after the claim
    assert counting.calls == [artifact_id]


def test_a_lock_that_outlasts_the_retries_fails_the_note_with_the_reason(
    queue_stack: tuple[Any, Path, CountingTranscriber],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx, db, counting = queue_stack
    monkeypatch.setattr(tasks, "QUEUE_RETRY", Backoff(retries=2, first_s=0.1, max_s=0.1))
    caplog.set_level(logging.INFO, "voicewatch")
    artifact_id = _stored_note(ctx)
    with sqlite_write_lock(db) as release:
        tasks.run_stage_task("transcription", artifact_id, 0)
        # The claim meets the lock on each of its 3 tries, then the task gives
        # up and fails the note, a write that waits (in place) for the release.
        deadline = time.monotonic() + 30
        while "giving up" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "giving up" in caplog.text
        release.set()
    assert _wait_status(ctx.engine, artifact_id, {"completed", "failed"}, 60) == "failed"
    row = repo.get_artifact(ctx.engine, artifact_id)
    assert row is not None and row["error_code"] == "store_unavailable"
    assert "database is locked" in row["error_message"] and "2 retries" in row["error_message"]
    assert counting.calls == []  # never claimed, never transcribed


def test_a_periodic_job_that_meets_the_lock_before_its_claim_is_retried_by_the_queue(
    queue_stack: tuple[Any, Path, CountingTranscriber], caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import select

    from voicewatch.store.tables import job_runs

    ctx, db, _counting = queue_stack
    caplog.set_level(logging.INFO, "voicewatch")
    with sqlite_write_lock(db):
        tasks.huey.execute(tasks.check_health_task.s())  # here, at once: its claim meets the lock
        assert "health check: transient store error" in caplog.text
        assert "the queue retries it in 0.5 s (1 of 8)" in caplog.text

    # The consumer's scheduler runs the retry; it claims the slot and runs the rules.
    def ran() -> bool:
        with ctx.engine.connect() as conn:
            rows = conn.execute(select(job_runs).where(job_runs.c.job == "check_health")).all()
        return len(rows) == 1 and rows[0].finished_at is not None

    deadline = time.monotonic() + 30
    while not ran() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ran()
