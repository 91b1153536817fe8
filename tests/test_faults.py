"""Faults, each a test that fails if data is lost.

A worker SIGKILLed mid-stage, the server SIGKILLed during ingest, PostgreSQL
and Redis restarted under load, the SQLite disk filling up. Real processes,
real databases; PostgreSQL and Redis are private instances (``private_services``)
so restarting them never disturbs the shared servers.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from private_services import PrivatePostgres, PrivateRedis, restartable_port
from recount import (
    assert_counters_equal_recount,
    assert_every_check_after_a_fault,
    build_hourly_twice,
    stored_event_ids,
)
from services import unavailable
from voicewatch import event_queries, events, tasks
from voicewatch import worker as composition
from voicewatch.auth import create_token
from voicewatch.clock import hour_start, now_ms
from voicewatch.config import Settings
from voicewatch.emitter import Monitor
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.intake import submit_note
from voicewatch.pipeline.recovery import fail_stale, find_stale, find_waiting, recover
from voicewatch.retry import start_retry
from voicewatch.simulate import seed_demo_clubs
from voicewatch.simulate_notes import DEMO_CLUBS, make_note
from voicewatch.store import open_store
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import voice_note_artifacts as artifacts_t
from voicewatch.store.transient import WEB_RETRY


def _worker(settings: Settings, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full_env = {
        **os.environ,
        "VOICEWATCH_DATABASE_URL": settings.database_url,
        "VOICEWATCH_QUEUE_URL": settings.queue_url,
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "voicewatch.cli", "worker", "--no-periodic", "--workers", "1"],
        env=full_env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_killed_mid_stage_is_detected_and_the_retry_completes(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vw.db'}")
    previous_queue = tasks._queue_url
    tasks.use_queue(settings.queue_url)
    request.addfinalizer(lambda: tasks.use_queue(previous_queue))  # for the tests after
    ctx = composition.build_context(settings)
    seed_demo_clubs(ctx.engine)
    log = tmp_path / "worker.log"
    doomed = _worker(settings, log, VOICEWATCH_STAGE_DELAY_MS="transcription=30000")
    try:
        artifact = submit_note(
            ctx,
            organization_id="org_clg",
            coach_user_id="coach_clg_1",
            text="Sean Murphy hurt his ankle.",
        )
        artifact_id = artifact["artifact_id"]
        assert _wait_for(
            lambda: repo.get_artifact(ctx.engine, artifact_id)["status"] == "transcribing", 30
        ), log.read_text()
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    assert repo.get_artifact(ctx.engine, artifact_id)["status"] == "transcribing"  # stuck
    assert find_stale(ctx.engine, now=now_ms()) == []  # not yet stale
    later = now_ms() + 11 * 60_000
    assert [a["artifact_id"] for a in find_stale(ctx.engine, now=later)] == [artifact_id]
    assert fail_stale(ctx, now=later) == [artifact_id]
    row = repo.get_artifact(ctx.engine, artifact_id)
    assert row["status"] == "failed" and row["error_code"] == "worker_lost"
    assert "transcription" in row["error_message"]
    assert fail_stale(ctx, now=later) == []  # once
    healthy = _worker(settings, log)
    try:
        start_retry(
            ctx.engine, artifact_id, "transcription", requested_by="ops", enqueue=ctx.enqueue
        )
        assert _wait_for(
            lambda: repo.get_artifact(ctx.engine, artifact_id)["status"] == "completed", 60
        ), log.read_text()[-2000:]
        ctx.monitor.flush(timeout=10)
        assert _wait_for(
            lambda: (
                "retry_succeeded"
                in [
                    e["event_type"]
                    for e in event_queries.artifact_timeline(ctx.engine, artifact_id)
                ]
            ),
            15,
        )
    finally:
        healthy.terminate()
        healthy.wait(timeout=20)
    kinds = [e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact_id)]
    assert kinds.count("artifact_received") == 1
    assert kinds.count("transcription_failed") == 1 and kinds.count("artifact_failed") == 1
    assert kinds.count("artifact_completed") == 1
    assert ctx.monitor.flush(timeout=30)
    assert_every_check_after_a_fault(ctx.engine)
    ctx.monitor.close()


def _serve(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "voicewatch.cli", "--db", db_url, "serve", "--port", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


class Served(NamedTuple):
    """A store with an ingest token and a ``voicewatch serve`` process on a free port."""

    engine: Engine
    token: str
    url: str
    log: Path
    process: subprocess.Popen[bytes]


def _served_store(db_url: str, tmp_path: Path) -> Served:
    engine = open_store(db_url)
    token = create_token(engine, scope="ingest", name="sdk")
    port = restartable_port()
    log = tmp_path / "server.log"
    process = _serve(db_url, port, log)
    return Served(engine, token, f"http://127.0.0.1:{port}", log, process)


def test_the_server_killed_during_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """SIGKILL the server while an SDK streams batches to it; restart it; every event lands once."""

    import httpx
    from sqlalchemy import func, select

    from voicewatch.auth import create_token
    from voicewatch.emitter import Monitor
    from voicewatch.store import open_store
    from voicewatch.store.tables import voice_pipeline_counters, voice_pipeline_events

    db_url = f"sqlite:///{tmp_path / 'srv.db'}"
    engine = open_store(db_url)
    token = create_token(engine, scope="ingest", name="sdk")
    port = restartable_port()  # restarted on the same port below
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    server = _serve(db_url, port, log)
    assert _wait_for(up, 30), log.read_text()
    monitor = Monitor(endpoint=url, token=token)
    sent = 0
    try:
        start = now_ms()
        for i in range(3000):
            monitor.emit("transcription_started", artifact_id=f"a{i % 50}", timestamp=start + i)
            sent += 1
            if i == 1500:
                os.kill(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
                time.sleep(1.0)
                server = _serve(db_url, port, log)
        assert _wait_for(up, 30), log.read_text()
        assert monitor.flush(timeout=60)
    finally:
        monitor.close(timeout=30)
        server.terminate()
        server.wait(timeout=20)
    stats = monitor.stats()
    assert stats["dropped"] == 0
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(voice_pipeline_events)).scalar_one()
        counted = conn.execute(
            select(func.sum(voice_pipeline_counters.c.count)).where(
                voice_pipeline_counters.c.scope == "",
                voice_pipeline_counters.c.counter_type == "transcription_started",
            )
        ).scalar_one()
    assert stored == sent == 3000
    assert counted == 3000  # counters equal a recount: nothing double-counted on the retry
    assert_every_check_after_a_fault(engine)
    engine.dispose()


# --- shared checks: stored once, counters equal a recount, snapshots rebuild the same ---------


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _status_lines(log: Path, status: int) -> int:
    """How many requests the server's access log shows answered with ``status``."""
    return sum(1 for line in log.read_text(errors="replace").splitlines() if f'" {status}' in line)


# --- PostgreSQL restarted under the server ------------------------------------------------------

#: Longer than a request's own retries (``WEB_RETRY``: 3 s of backoff), so the
#: outage is felt as 503s, not only as slower answers.
PG_OUTAGE_S = WEB_RETRY.total_s() + 2.0


def test_postgresql_restarted_while_the_sdk_streams_to_the_server(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Stop PostgreSQL for 5 s and start it again while events stream in over HTTP.

    The server is never restarted: its pool (pre-ping) finds the dead
    connections and reconnects; meanwhile each request retries its write for
    about 3 s, then answers 503, and the SDK retries.
    A batch committed just as the connection died is resent and skipped as a
    duplicate, so each event is stored once and counted once.
    """
    db_url = private_postgres.create_database("fault_pg_restart")
    engine, token, url, log, server = _served_store(db_url, tmp_path)
    total, third = 3000, 1000
    hour = hour_start(now_ms()) - 2 * 3_600_000  # a finished hour, so snapshots are final
    monitor = Monitor(endpoint=url, token=token, batch_size=100, spill_dir=tmp_path / "spill")
    sent: list[str] = []
    outage = 0.0
    try:
        assert _wait_for(lambda: _healthy(url), 30), log.read_text()
        for i in range(total):
            event_id = monitor.emit(
                "artifact_received",
                artifact_id=f"art_pg_{i}",
                organization_id=("org_a", "org_b")[i % 2],
                pipeline_stage="ingestion",
                timestamp=hour + i * 1000,  # 3000 s: 50 minute buckets of one hour
            )
            assert event_id is not None
            sent.append(event_id)
            if i == third:
                # Half-way through the first third landing, the database goes away.
                assert _wait_for(lambda: monitor.stats()["written"] >= third // 2, 30)
                private_postgres.stop()
                down_at = time.monotonic()
            if third < i < 2 * third:
                time.sleep(PG_OUTAGE_S / third)  # keep streaming through the outage
            if i == 2 * third:
                written_while_down = monitor.stats()["written"]
                private_postgres.start()
                outage = time.monotonic() - down_at
        assert monitor.flush(timeout=60), monitor.stats()
        assert server.poll() is None  # the same server process throughout
        assert _healthy(url)
    finally:
        if not private_postgres.running():
            private_postgres.start()
        monitor.close(timeout=30)
        server.terminate()
        server.wait(timeout=20)
    stats = monitor.stats()
    print(
        f"\nPostgreSQL down {outage:.1f} s; {stats}; server answered "
        f"{_status_lines(log, 200)}x 200, {_status_lines(log, 503)}x 503"
    )
    assert outage >= PG_OUTAGE_S
    assert written_while_down < total - third  # the outage held events back
    assert stats["retries"] > 0 and _status_lines(log, 503) > 0  # and it was felt
    assert _status_lines(log, 500) == 0
    assert (stats["dropped"], stats["rejected"], stats["errors"]) == (0, 0, 0)
    ids = stored_event_ids(engine)
    assert len(ids) == len(set(ids)) == total  # stored exactly once
    assert set(ids) == set(sent)
    assert stats["written"] + stats["duplicates"] >= total
    assert assert_counters_equal_recount(engine) > 0
    snapshots = build_hourly_twice(engine, {hour})
    by_scope = {row["scope"]: row for row in snapshots}
    assert by_scope[PLATFORM]["artifacts_received"] == total
    assert by_scope["org_a"]["artifacts_received"] == 1500
    assert by_scope["org_b"]["artifacts_received"] == 1500
    engine.dispose()


# --- the SQLite disk fills up ----------------------------------------------------------------


@contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (root only), unmounted whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _one_event(i: int, prefix: str) -> dict[str, Any]:
    return {
        "event_id": f"{prefix}_{i}",
        "event_type": "artifact_received",
        "timestamp": now_ms(),
        "artifact_id": f"art_{prefix}_{i}",
        "organization_id": "org_disk",
        "pipeline_stage": "ingestion",
    }


def test_a_full_sqlite_disk_refuses_writes_clearly_and_loses_nothing(tmp_path: Path) -> None:
    """Fill the SQLite database's filesystem; every writer must keep its events until space frees.

    The server answers 507 with a one-line error (not 500, not a vague 503);
    both SDK modes (HTTP and direct database) keep their events queued; the
    database stays intact; deleting a filler file on the same filesystem lets
    every held-back event land once, with counters equal to a recount.
    """
    disk = tmp_path / "disk"
    with tiny_filesystem(disk, "8m"):
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (4 << 20))  # 4 MiB to free later
        db_path = disk / "vw.db"
        db_url = f"sqlite:///{db_path}"
        engine, token, url, log, server = _served_store(db_url, tmp_path)
        over_http = Monitor(endpoint=url, token=token, spill_dir=tmp_path / "spill_http")
        direct = Monitor(database_url=db_url, spill_dir=tmp_path / "spill_db")
        try:
            assert _wait_for(lambda: _healthy(url), 30), log.read_text()
            # Fill it: big batches, then smaller, until not even one event fits.
            filled = 0
            for size in (200, 20, 1):
                while True:
                    batch = [_one_event(filled + j, "fill") for j in range(size)]
                    try:
                        filled += events.log_events(engine, batch).accepted
                    except OperationalError as exc:
                        assert "database or disk is full" in str(exc)
                        break
            assert filled > 500
            assert shutil.disk_usage(disk).free < 64 << 10
            # The server says so, clearly.
            answer = httpx.post(
                f"{url}/api/v1/events",
                json=[_one_event(i, "http_probe") for i in range(5)],
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert answer.status_code == 507, answer.text
            body = answer.json()
            assert set(body) == {"error", "detail"}
            assert "disk is full" in body["error"] and "\n" not in body["error"]
            # Both SDK modes hold their events back rather than lose them.
            held_http = [over_http.emit(**_one_event(i, "sdk_http")) for i in range(300)]
            held_db = [direct.emit(**_one_event(i, "sdk_db")) for i in range(300)]
            assert _wait_for(
                lambda: over_http.stats()["retries"] >= 2 and direct.stats()["retries"] >= 2, 30
            )
            for monitor in (over_http, direct):
                stats = monitor.stats()
                assert (stats["written"], stats["dropped"], stats["errors"]) == (0, 0, 0), stats
            assert _integrity(db_path) == "ok"
            full_for = time.monotonic()
            filler.unlink()  # space comes back
            assert over_http.flush(timeout=60), over_http.stats()
            assert direct.flush(timeout=60), direct.stats()
            full_for = time.monotonic() - full_for
            after = httpx.post(
                f"{url}/api/v1/events",
                json=[_one_event(i, "http_after") for i in range(5)],
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert after.status_code == 200 and after.json()["accepted"] == 5
            assert server.poll() is None
        finally:
            over_http.close(timeout=10)
            direct.close(timeout=10)
            server.terminate()
            server.wait(timeout=20)
        print(
            f"\nfilled with {filled} events; held back {len(held_http)} (HTTP) + "
            f"{len(held_db)} (direct), landed {full_for:.1f} s after space was freed; "
            f"server: {_status_lines(log, 507)}x 507; {over_http.stats()}; {direct.stats()}"
        )
        assert _status_lines(log, 500) == 0
        assert _status_lines(log, 507) >= 2  # the probe and the SDK's held batches
        for monitor in (over_http, direct):
            stats = monitor.stats()
            assert (stats["written"], stats["dropped"], stats["rejected"]) == (300, 0, 0), stats
        ids = stored_event_ids(engine)
        assert len(ids) == len(set(ids)) == filled + 300 + 300 + 5
        assert set(held_http) | set(held_db) <= set(ids)
        assert not any(i.startswith("http_probe") for i in ids)  # refused means not stored
        assert_every_check_after_a_fault(engine)
        engine.dispose()
        assert _integrity(db_path) == "ok"


# --- Redis restarted under the workers ------------------------------------------------------

REDIS_OUTAGE_S = 1.0
_TERMINAL = ("completed", "failed")


def _artifact_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.artifact_id: dict(r._mapping) for r in conn.execute(select(artifacts_t))}


def _settled(engine: Engine, quiet_s: float, timeout: float) -> bool:
    """True once no artifact has changed for ``quiet_s`` (the queue has nothing left to run)."""

    def fingerprint() -> set[tuple[str, str, int]]:
        rows = _artifact_rows(engine).values()
        return {(r["artifact_id"], r["status"], r["updated_at"]) for r in rows}

    deadline = time.monotonic() + timeout
    last, since = fingerprint(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = fingerprint()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return True
    return False


def test_redis_restarted_under_the_workers_loses_no_artifact(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Restart the (memoryless) Redis queue while two workers run 30 notes.

    Queued tasks vanish with it. The workers must reconnect by themselves
    (notes submitted afterwards complete), recovery must find every artifact
    left waiting for a task that no longer exists and queue that stage again,
    and then each artifact has completed exactly once with a full timeline,
    without a failure.
    """
    import redis

    redis.Redis.from_url(private_redis.url).flushdb()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vw.db'}", queue_url=private_redis.url)
    previous_queue = tasks._queue_url
    tasks.use_queue(settings.queue_url)
    ctx = composition.build_context(settings)
    seed_demo_clubs(ctx.engine)
    log = tmp_path / "workers.log"
    # A slow claims stage keeps a backlog in the queue for the restart to lose.
    delay = {"VOICEWATCH_STAGE_DELAY_MS": "claims_extraction=250"}
    workers = [_worker(settings, log, **delay), _worker(settings, log, **delay)]
    coaches = [(club.organization_id, coach) for club in DEMO_CLUBS for coach in club.coaches]
    rng = random.Random(6)

    def submit(count: int) -> list[str]:
        ids = []
        for i in range(count):
            org, coach = coaches[i % len(coaches)]
            club = next(c for c in DEMO_CLUBS if c.organization_id == org)
            text = make_note(rng, club)
            note = submit_note(ctx, organization_id=org, coach_user_id=coach, text=text)
            ids.append(note["artifact_id"])
        return ids

    def past_claims(ids: list[str]) -> int:
        rows = _artifact_rows(ctx.engine)
        done = ("claims_extraction", "entity_resolution", "draft_generation")
        return sum(1 for i in ids if rows[i]["completed_stage"] in done)

    def statuses(ids: list[str]) -> Counter[str]:
        rows = _artifact_rows(ctx.engine)
        return Counter(rows[i]["status"] for i in ids)

    try:
        before = submit(20)
        # Stages run breadth-first (the queue is FIFO): once a few notes are past
        # claims extraction, the rest wait in Redis for theirs.
        assert _wait_for(lambda: past_claims(before) >= 4, 60), log.read_text()[-3000:]
        queued = tasks.queue_depth()
        private_redis.stop()
        down_at = time.monotonic()
        at_restart = statuses(before)
        time.sleep(REDIS_OUTAGE_S)
        private_redis.start()
        outage = time.monotonic() - down_at
        after = submit(10)
        # Nobody touched the workers: they must find the new Redis themselves.
        reconnected = time.monotonic()
        assert _wait_for(lambda: statuses(after)["completed"] == 10, 90), log.read_text()[-3000:]
        reconnected = time.monotonic() - reconnected
        assert _settled(ctx.engine, quiet_s=2.0, timeout=60)
        rows = _artifact_rows(ctx.engine)
        stuck = sorted(i for i, r in rows.items() if r["status"] not in _TERMINAL)
        print(
            f"\nRedis down {outage:.1f} s with {queued} tasks queued; at the restart "
            f"{dict(at_restart)}; "
            f"the 10 notes sent afterwards completed in {reconnected:.1f} s; stuck: "
            f"{[(i, rows[i]['status'], rows[i]['current_stage']) for i in stuck]}"
        )
        assert all(w.poll() is None for w in workers)  # never restarted
        assert queued > 0 and at_restart["completed"] < 20  # the restart hit work in flight
        assert stuck, "the restart should have left artifacts waiting for lost tasks"
        # Recovery finds every artifact the lost tasks left behind and queues
        # the stage each was waiting for again; nothing is failed.
        later = now_ms() + 11 * 60_000
        assert sorted(a["artifact_id"] for a in find_waiting(ctx.engine, now=later)) == stuck
        assert find_stale(ctx.engine, now=later) == []
        outcome = recover(ctx, now=later)
        assert outcome["failed"] == [] and sorted(outcome["requeued"]) == stuck
        everyone = before + after
        assert _wait_for(lambda: statuses(everyone)["completed"] == 30, 120), statuses(everyone)
        assert ctx.monitor.flush(timeout=30)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        tasks.use_queue(previous_queue)
    for artifact_id in everyone:
        kinds = Counter(
            e["event_type"] for e in event_queries.artifact_timeline(ctx.engine, artifact_id)
        )
        assert kinds["artifact_received"] == 1, (artifact_id, kinds)
        assert kinds["artifact_completed"] == 1, (artifact_id, kinds)
        assert kinds["drafts_generated"] == 1, (artifact_id, kinds)
        assert kinds["artifact_failed"] == kinds["retry_initiated"] == 0, (artifact_id, kinds)
        for stage in ("transcription_completed", "claims_extracted"):
            assert kinds[stage] >= 1, (artifact_id, kinds)
    assert_every_check_after_a_fault(ctx.engine)
    ctx.monitor.close()
