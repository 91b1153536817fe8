"""Load test: HTTP ingest, dashboard reads and pipeline work at once, over loopback.

From this one process, for ``--seconds`` (default 300, the issue's 5 minutes;
env ``VOICEWATCH_LOAD_SECONDS`` changes the default, e.g. for ``make bench``
on a busy machine: ``VOICEWATCH_LOAD_SECONDS=60 make bench``):

- ingest clients (threads, one keep-alive connection each) POST batches of
  realistic events (tests/factories.py ``make_traffic``: whole artifact
  stories, three organizations, 5% failures) to ``/api/v1/events`` with an
  ingest token, as fast as the server answers; a batch that fails in transit
  or with a 5xx is sent again, as the SDK would (duplicates are ignored);
- dashboard clients GET ``/api/v1/metrics/realtime``, ``/api/v1/events?limit=50``,
  ``/api/v1/artifacts``, ``/api/v1/metrics/history?range=1h|24h`` and
  ``/api/v1/metrics/stages`` with a staff token, in a loop;
- a note client POSTs text notes to ``/api/v1/artifacts`` at a steady rate
  (after ``voicewatch simulate`` has seeded the demo clubs and queued a few),
  so the workers have pipeline work,

against two set-ups, each started here as real processes on fresh stores:

1. ``embedded``: one ``voicewatch serve`` and one ``voicewatch worker`` on a
   new SQLite file (and the SQLite queue beside it) in a temporary directory;
2. ``scale-out``: PostgreSQL (``VOICEWATCH_LOAD_POSTGRES_URL``, default the
   ``test_load`` database, whose ``public`` schema is dropped and migrated
   afresh) and Redis (``VOICEWATCH_LOAD_REDIS_URL``, default db 12, flushed),
   with two servers on two ports (the clients take turns between them, as a
   load balancer would) and two workers, only one of them running the
   periodic jobs (``--no-periodic`` on the other).

Then it lets the workers drain, stops every process and checks from the
database itself that nothing was lost: the load's events stored equal the
events the servers reported as accepted (checked id by id, by sequence
number), every acknowledged event is stored, the live counters equal an
independent recount of the events (per minute, type and stage; platform-wide
and per organization; AI-cost counts too), and every note submitted reached
``completed`` or ``failed``.

It also prints each process's longest write transaction (``store.write_stats``:
from holding the lock to the end of the commit), the figure that says how long
SQLite's one write lock can keep every other writer waiting.

It prints figures and asserts no timing. It exits 1 when an event is lost,
a counter is off, a note is stuck, or any request got a 5xx or an unexpected
status. Latencies are measured in this client and include its own share of
the CPU (this process, the servers, the workers and the database share the
machine's cores).

    .venv/bin/python bench/bench_load.py [--seconds 300] [--only embedded|scale-out]
        [--ingest-clients 4] [--batch 100] [--dashboard-clients 2] [--notes-per-s 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, and_, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factories import BASE_MS, make_traffic
from voicewatch.clock import now_ms
from voicewatch.events import AI_COST, NOT_COST_BEARING, STAGE_LATENCY
from voicewatch.histogram import index_of
from voicewatch.metrics.totals import COMPLETION_STAGE
from voicewatch.simulate_notes import DEMO_CLUBS, make_note
from voicewatch.store import make_engine, migrate, write_stats
from voicewatch.store.tables import PLATFORM, voice_note_artifacts
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t

POSTGRES_URL = os.environ.get(
    "VOICEWATCH_LOAD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test_load"
)
REDIS_URL = os.environ.get("VOICEWATCH_LOAD_REDIS_URL", "redis://127.0.0.1:6379/12")
DEFAULT_SECONDS = int(os.environ.get("VOICEWATCH_LOAD_SECONDS", "300"))
VOICEWATCH = str(Path(sys.executable).with_name("voicewatch"))
TERMINAL = ("completed", "failed")
DASHBOARD_ROUTES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("/api/v1/metrics/realtime", {}),
    ("/api/v1/events", {"limit": 50}),
    ("/api/v1/artifacts", {}),
    ("/api/v1/metrics/history", {"range": "1h"}),
    ("/api/v1/metrics/realtime", {"organization_id": "org_clg"}),
    ("/api/v1/metrics/history", {"range": "24h"}),
    ("/api/v1/metrics/stages", {}),
)
CLASSES = ("ingest", "dashboard", "notes")


# --- the processes under test -------------------------------------------------------------


@dataclass
class Stack:
    """Servers and workers started for one set-up, and how to reach them."""

    name: str
    database_url: str
    queue_url: str
    workdir: Path
    urls: list[str] = field(default_factory=list)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    staff_token: str = ""
    ingest_token: str = ""

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "VOICEWATCH_DATABASE_URL": self.database_url,
            "VOICEWATCH_QUEUE_URL": self.queue_url,
            "VOICEWATCH_SECRET_KEY": "load-test-secret-key-shared-by-every-server",
            "VOICEWATCH_AUDIO_DIR": str(self.workdir / "audio"),
            "VOICEWATCH_WRITE_STATS_DIR": str(self.workdir / "write-stats"),
        }

    def longest_writes(self) -> list[dict[str, Any]]:
        """Each process's longest write transaction (``store.write_stats``), longest first."""
        found = write_stats.read_dir(self.workdir / "write-stats")
        return sorted(found, key=lambda f: -float(f["ms"]))

    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run one ``voicewatch`` command to completion; its stdout."""
        done = subprocess.run(
            [VOICEWATCH, *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"voicewatch {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout

    def spawn(self, label: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{label}.log", "wb")  # noqa: SIM115 (closed by the child)
        proc = subprocess.Popen(
            [VOICEWATCH, *args], env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs.append((label, proc))
        return proc

    def log_tail(self, label: str, lines: int = 15) -> str:
        path = self.workdir / f"{label}.log"
        text_ = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text_.splitlines()[-lines:])

    def serve(self, label: str) -> None:
        port = free_port()
        self.spawn(label, "serve", "--host", "127.0.0.1", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            proc = dict(self.procs)[label]
            if proc.poll() is not None:
                raise RuntimeError(f"{label} exited:\n{self.log_tail(label)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{label} did not answer /api/v1/health:\n{self.log_tail(label)}"
                )
            time.sleep(0.2)
        self.urls.append(url)

    def log_findings(self, per_log: int = 5) -> list[str]:
        """Warnings, errors and tracebacks the servers and workers logged (the first few each)."""
        found = []
        for path in sorted(self.workdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            hits = [
                line.strip()
                for line in lines
                if any(w in line for w in ("WARNING", "ERROR", "Traceback", "unavailable", "busy"))
            ]
            found += [f"{path.stem}: {line[:200]}" for line in hits[:per_log]]
            if len(hits) > per_log:
                found.append(f"{path.stem}: ... {len(hits) - per_log} more")
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each process (Linux /proc), to see where the cores went."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for label, proc in self.procs:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                used[label] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    def stop(self) -> None:
        """SIGINT first (uvicorn and Huey finish what they hold), SIGKILL after 30 s."""
        for _label, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        for _label, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reset_postgres(url: str) -> None:
    """Create the database if missing; drop and recreate its schema, then migrate."""
    engine = make_engine(url, pool=False)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception:
        name = url.rsplit("/", 1)[-1]
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    engine.dispose()


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def start_embedded(workdir: Path) -> Stack:
    """One server and one worker on a fresh SQLite file and the SQLite queue beside it."""
    db = workdir / "voicewatch.db"
    stack = Stack(
        "embedded", f"sqlite:///{db}", f"sqlite:///{workdir / 'voicewatch-queue.db'}", workdir
    )
    stack.cli("migrate")
    prepare(stack)
    stack.spawn("worker", "worker")
    stack.serve("server")
    return stack


def start_scale_out(workdir: Path) -> Stack:
    """Two servers and two workers (one runs the periodic jobs) on PostgreSQL and Redis."""
    reset_postgres(POSTGRES_URL)
    flush_redis(REDIS_URL)
    stack = Stack("scale-out", POSTGRES_URL, REDIS_URL, workdir)
    prepare(stack)
    stack.spawn("worker-periodic", "worker")
    stack.spawn("worker-2", "worker", "--no-periodic")
    stack.serve("server-1")
    stack.serve("server-2")
    return stack


def prepare(stack: Stack) -> None:
    """Tokens from the CLI, demo clubs and rosters, and a first few notes queued."""
    stack.staff_token = stack.cli("create-token", "--scope", "staff").strip().splitlines()[-1]
    stack.ingest_token = stack.cli("create-token", "--scope", "ingest").strip().splitlines()[-1]
    stack.cli("simulate", "--artifacts", "20", "--seed", "6")


# --- the load --------------------------------------------------------------------------------


class EventSource:
    """Endless realistic events with fresh ids (``ld<run>-<seq>``) and current timestamps.

    One ``make_traffic`` story set is made once and replayed in cycles; each
    cycle renames its artifacts and moves its times to "now", so every event
    is new and lands in the live counters' last hour. A batch is a contiguous
    range of sequence numbers, which is how the check finds each one.
    """

    def __init__(self, run: str, seed: int = 2026) -> None:
        self.run = run
        self.prefix = f"ld{run}-"
        self._template = make_traffic(400, start_ms=BASE_MS, spread_ms=60_000, rng=seed)
        self._span = self._template[-1]["timestamp"] - BASE_MS
        self._lock = threading.Lock()
        self._seq = 0
        self._cycle = 0
        self._pos = 0
        self._shift = 0

    def next_batch(self, size: int) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            if self._pos >= len(self._template):
                self._pos = 0
                self._cycle += 1
            if self._pos == 0:
                self._shift = now_ms() - self._span - 1_000 - BASE_MS
            first, cycle, shift = self._seq, self._cycle, self._shift
            chunk = self._template[self._pos : self._pos + size]
            self._pos += len(chunk)
            self._seq += len(chunk)
        out = []
        for i, event in enumerate(chunk):
            copy = dict(event)
            copy["event_id"] = f"{self.prefix}{first + i}"
            copy["timestamp"] = event["timestamp"] + shift
            for key in ("artifact_id", "voice_note_id"):
                if key in copy:
                    copy[key] = f"{copy[key]}-{self.run}-{cycle}"
            for key in ("stage_started_at", "stage_completed_at"):
                if isinstance(copy.get(key), int):
                    copy[key] += shift
            out.append(copy)
        return first, out


@dataclass
class Recorder:
    """Latencies and statuses per route class, shared by the client threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CLASSES})
    route_latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[str]] = field(
        default_factory=lambda: {c: Counter() for c in CLASSES}
    )
    accepted: int = 0
    duplicates: int = 0
    acked: list[tuple[int, int]] = field(default_factory=list)  # (first seq, count) per 200
    unacked: list[tuple[int, int]] = field(default_factory=list)  # gave up on these
    accepted_at: list[tuple[float, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, kind: str, seconds: float, status: str, route: str | None = None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[kind][status] += 1
            if route:
                self.route_latencies.setdefault(route, []).append(seconds)

    def problem(self, message: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(message)


class RoundRobin:
    """Each request goes to the next server, as a load balancer in front of them would."""

    def __init__(self, urls: list[str], token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.clients = [httpx.Client(base_url=u, headers=headers, timeout=60) for u in urls]
        self._turn = random.randrange(len(urls))

    def next(self) -> httpx.Client:
        self._turn = (self._turn + 1) % len(self.clients)
        return self.clients[self._turn]

    def close(self) -> None:
        for client in self.clients:
            client.close()


def ingest_client(
    stack: Stack, source: EventSource, rec: Recorder, stop: threading.Event, batch: int
) -> None:
    """Send batches back to back; resend a batch until a 200 says where it went."""
    servers = RoundRobin(stack.urls, stack.ingest_token)
    try:
        while not stop.is_set():
            first, events = source.next_batch(batch)
            for attempt in range(20):
                t0 = time.perf_counter()
                try:
                    response = servers.next().post("/api/v1/events", json=events)
                except httpx.HTTPError as exc:
                    rec.request("ingest", time.perf_counter() - t0, type(exc).__name__)
                    time.sleep(0.2 * (attempt + 1))
                    continue
                rec.request("ingest", time.perf_counter() - t0, str(response.status_code))
                if response.status_code == 200:
                    body = response.json()
                    if body["rejected"] or body["accepted"] + body["duplicates"] != len(events):
                        rec.problem(f"ingest: unexpected result {str(body)[:200]}")
                    with rec.lock:
                        rec.accepted += body["accepted"]
                        rec.duplicates += body["duplicates"]
                        rec.acked.append((first, len(events)))
                        rec.accepted_at.append((time.monotonic(), body["accepted"]))
                    break
                if response.status_code < 500:
                    rec.problem(f"ingest: {response.status_code} {response.text[:200]}")
                    with rec.lock:
                        rec.unacked.append((first, len(events)))
                    break
                time.sleep(0.2 * (attempt + 1))  # a 5xx: counted above, then sent again
            else:
                with rec.lock:
                    rec.unacked.append((first, len(events)))
                rec.problem(f"ingest: batch at {first} never acknowledged")
    finally:
        servers.close()


def dashboard_client(
    stack: Stack, rec: Recorder, stop: threading.Event, think_s: float, offset: int
) -> None:
    """A staff dashboard: each read route in turn, a short pause after each round."""
    servers = RoundRobin(stack.urls, stack.staff_token)
    try:
        i = offset
        while not stop.is_set():
            path, params = DASHBOARD_ROUTES[i % len(DASHBOARD_ROUTES)]
            i += 1
            t0 = time.perf_counter()
            try:
                response = servers.next().get(path, params=params)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
                response = None
            rec.request("dashboard", time.perf_counter() - t0, status, route=path)
            if response is None or response.status_code != 200:
                rec.problem(f"dashboard {path}: {status}")
            if i % len(DASHBOARD_ROUTES) == 0:
                stop.wait(think_s)
    finally:
        servers.close()


def note_client(stack: Stack, rec: Recorder, stop: threading.Event, per_s: float) -> None:
    """Coach notes as text at a steady rate, through ``POST /api/v1/artifacts``."""
    rng = random.Random(6)
    servers = RoundRobin(stack.urls, stack.ingest_token)
    next_at = time.monotonic()
    try:
        while not stop.is_set():
            club = rng.choice(DEMO_CLUBS)
            form = {
                "organization_id": club.organization_id,
                "coach_user_id": rng.choice(club.coaches),
                "source_channel": rng.choice(("whatsapp", "app")),
                "text": make_note(rng, club),
            }
            t0 = time.perf_counter()
            try:
                response = servers.next().post("/api/v1/artifacts", data=form)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status, response = type(exc).__name__, None
            rec.request("notes", time.perf_counter() - t0, status)
            if response is not None and response.status_code == 202:
                with rec.lock:
                    rec.notes.append(response.json()["artifact_id"])
            else:
                rec.problem(f"notes: {status}")
            next_at += 1.0 / per_s
            stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        servers.close()


def run_load(
    stack: Stack,
    seconds: float,
    *,
    ingest_clients: int = 4,
    batch: int = 100,
    dashboard_clients: int = 2,
    think_s: float = 0.2,
    notes_per_s: float = 2.0,
) -> tuple[Recorder, EventSource, float]:
    """Every client at once for ``seconds``; returns what they saw and the elapsed time."""
    rec = Recorder()
    source = EventSource(uuid.uuid4().hex[:8])
    stop = threading.Event()
    threads = [
        threading.Thread(target=ingest_client, args=(stack, source, rec, stop, batch))
        for _ in range(ingest_clients)
    ]
    threads += [
        threading.Thread(target=dashboard_client, args=(stack, rec, stop, think_s, i * 3))
        for i in range(dashboard_clients)
    ]
    if notes_per_s > 0:
        threads.append(threading.Thread(target=note_client, args=(stack, rec, stop, notes_per_s)))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    rec.accepted_at = [(t - started, n) for t, n in rec.accepted_at]
    return rec, source, time.monotonic() - started


# --- after the load: drain, then check from the database ---------------------------------------


def unfinished(engine: Engine) -> int:
    query = select(func.count()).select_from(voice_note_artifacts)
    query = query.where(voice_note_artifacts.c.status.not_in(TERMINAL))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def drain(engine: Engine, timeout_s: float) -> float:
    """Wait until no note is between received and completed/failed; the seconds waited."""
    started = time.monotonic()
    while unfinished(engine) and time.monotonic() - started < timeout_s:
        time.sleep(1)
    return time.monotonic() - started


@dataclass
class Check:
    """What the database says after the run."""

    stored: int = 0
    lost: int = 0
    unacked_stored: int = 0
    counter_cells: int = 0
    counter_mismatches: list[str] = field(default_factory=list)
    notes_total: int = 0
    notes_by_status: dict[str, int] = field(default_factory=dict)
    notes_missing: int = 0

    @property
    def notes_stuck(self) -> int:
        return self.notes_missing + sum(
            n for s, n in self.notes_by_status.items() if s not in TERMINAL
        )


def stored_sequence(engine: Engine, prefix: str, size: int) -> bytearray:
    """A byte per sequence number: 1 when the event ``<prefix><seq>`` is stored."""
    seen = bytearray(size)
    query = select(events_t.c.event_id).where(events_t.c.event_id.like(f"{prefix}%"))
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(query)
        for (event_id,) in result:
            seq = int(event_id[len(prefix) :])
            if seq >= size:
                seen.extend(bytes(seq + 1 - size))
                size = seq + 1
            seen[seq] = 1
    return seen


def recount(engine: Engine) -> tuple[int, list[str]]:
    """Counters against the events themselves: per scope, minute, type and stage."""
    e = events_t.c
    bucket = (e.timestamp - e.timestamp % 60_000).label("bucket")
    stage = func.coalesce(e.pipeline_stage, "").label("stage")
    expected: Counter[tuple[str, int, str, str]] = Counter()
    cost_bearing = and_(e.ai_cost.is_not(None), e.event_type.not_in(sorted(NOT_COST_BEARING)))
    with engine.connect() as conn:
        for org, b, kind, st, n in conn.execute(
            select(e.organization_id, bucket, e.event_type, stage, func.count()).group_by(
                e.organization_id, bucket, e.event_type, stage
            )
        ):
            expected[(PLATFORM, b, kind, st)] += n
            if org:
                expected[(org, b, kind, st)] += n
        for org, b, n in conn.execute(
            select(e.organization_id, bucket, func.count())
            .where(cost_bearing)
            .group_by(e.organization_id, bucket)
        ):
            expected[(PLATFORM, b, AI_COST, "")] += n
            if org:
                expected[(org, b, AI_COST, "")] += n
        # the platform-wide stage latency histograms: one cell per completion bucket
        for b, kind, duration, n in conn.execute(
            select(bucket, e.event_type, e.duration_ms, func.count())
            .where(e.event_type.in_(sorted(COMPLETION_STAGE)), e.duration_ms.is_not(None))
            .group_by(bucket, e.event_type, e.duration_ms)
        ):
            cell = f"{STAGE_LATENCY}{index_of(duration)}"
            expected[(PLATFORM, b, cell, COMPLETION_STAGE[kind])] += n
        c = counters_t.c
        actual = {
            (scope, b, kind, st): n
            for scope, b, kind, st, n in conn.execute(
                select(c.scope, c.bucket_start, c.counter_type, c.pipeline_stage, c.count)
            )
            if kind != "e2e_latency"
        }
    mismatches = [
        f"{key}: counter {actual.get(key, 0)}, events {expected.get(key, 0)}"
        for key in sorted(set(expected) | set(actual))
        if actual.get(key, 0) != expected.get(key, 0)
    ]
    return len(expected), mismatches


def check(stack: Stack, rec: Recorder, source: EventSource) -> Check:
    engine = make_engine(stack.database_url, pool=False)
    try:
        result = Check()
        seen = stored_sequence(engine, source.prefix, source._seq)
        result.stored = sum(seen)
        for first, count in rec.acked:
            result.lost += count - sum(seen[first : first + count])
        for first, count in rec.unacked:
            result.unacked_stored += sum(seen[first : first + count])
        result.counter_cells, result.counter_mismatches = recount(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                select(voice_note_artifacts.c.artifact_id, voice_note_artifacts.c.status)
            ).all()
        status_of = dict(rows)
        result.notes_total = len(status_of)
        result.notes_by_status = dict(Counter(status_of.values()))
        result.notes_missing = sum(1 for a in rec.notes if a not in status_of)
        return result
    finally:
        engine.dispose()


# --- reporting ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def lowest_window_rate(
    accepted_at: list[tuple[float, int]], seconds: float, window: float
) -> float:
    """The slowest ``window``-second stretch, in accepted events/s (sustained, not a burst)."""
    if seconds < window * 2:
        return float("nan")  # too short to tell a stretch from the whole
    bins = [0] * (int(seconds // window) + 1)
    for t, n in accepted_at:
        bins[min(len(bins) - 1, int(t // window))] += n
    full = bins[: int(seconds // window)]
    return min(full) / window if full else float("nan")


@dataclass
class Outcome:
    """One set-up's figures and verdict."""

    name: str
    seconds: float
    rec: Recorder
    check: Check
    drain_s: float
    servers: int
    workers: int
    cpu: dict[str, float] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=list)
    #: per process: {"process", "pid", "ms", "where", "count"} (longest write transaction)
    writes: list[dict[str, Any]] = field(default_factory=list)

    def longest_write(self, process: str) -> str:
        """``"12 ms"``: the longest write transaction of processes named ``process``."""
        found = [w for w in self.writes if w["process"] == process]
        return f"{max(float(w['ms']) for w in found):,.0f} ms" if found else "-"

    @property
    def events_per_s(self) -> float:
        return self.rec.accepted / self.seconds

    @property
    def server_errors(self) -> int:
        return sum(
            n
            for counts in self.rec.statuses.values()
            for status, n in counts.items()
            if not status.isdigit() or int(status) >= 500
        )

    @property
    def failures(self) -> list[str]:
        found = []
        if self.server_errors:
            found.append(f"{self.server_errors} requests failed with a 5xx or in transit")
        if self.check.lost:
            found.append(f"{self.check.lost} acknowledged events are not stored")
        # every id is sent once (and resent only when no answer came): a duplicate on a
        # resend is an event an unanswered attempt stored, so it counts as accepted too
        if self.check.stored != self.rec.accepted + self.rec.duplicates:
            found.append(
                f"events stored {self.check.stored} != accepted by the servers "
                f"{self.rec.accepted} (+ {self.rec.duplicates} duplicates on resend)"
            )
        if self.check.counter_mismatches:
            found.append(
                f"{len(self.check.counter_mismatches)} counter cells differ from a recount, e.g. "
                + "; ".join(self.check.counter_mismatches[:3])
            )
        if self.check.notes_stuck:
            found.append(f"{self.check.notes_stuck} notes never reached completed/failed")
        if self.rec.problems:
            found.append(
                f"{len(self.rec.problems)} unexpected answers, e.g. {self.rec.problems[0]}"
            )
        if self.rec.accepted == 0:
            found.append("no event was accepted at all")
        return found


def report(outcome: Outcome) -> None:
    rec, chk = outcome.rec, outcome.check
    print(
        f"\n== {outcome.name}: {outcome.servers} server(s), {outcome.workers} worker(s), "
        f"{outcome.seconds:.0f} s of load, drain {outcome.drain_s:.1f} s",
        flush=True,
    )
    print(f"  {'class':<10} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for kind in CLASSES:
        ms = [s * 1000 for s in rec.latencies[kind]]
        statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(rec.statuses[kind].items()))
        print(
            f"  {kind:<10} {len(ms):>9,} {pct(ms, 0.5):>8.1f} {pct(ms, 0.99):>8.1f} "
            f"{max(ms, default=float('nan')):>8.1f}  {statuses or '-'}"
        )
    for route, values in sorted(rec.route_latencies.items()):
        ms = [s * 1000 for s in values]
        print(f"    {route:<28} {len(ms):>7,} {pct(ms, 0.5):>8.1f} {pct(ms, 0.99):>8.1f}")
    print(
        f"  ingest: {rec.accepted:,} events accepted = {outcome.events_per_s:,.0f} events/s "
        f"(slowest 10 s: {lowest_window_rate(rec.accepted_at, outcome.seconds, 10):,.0f}/s); "
        f"duplicates on resend {rec.duplicates:,}"
    )
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(chk.notes_by_status.items()))
    print(
        f"  check:  stored {chk.stored:,} (accepted {rec.accepted:,}); lost {chk.lost}; "
        f"counter cells {chk.counter_cells:,}, off {len(chk.counter_mismatches)}; "
        f"notes {chk.notes_total} ({statuses}), stuck {chk.notes_stuck}"
    )
    print("  CPU s:  " + ", ".join(f"{k} {v:.0f}" for k, v in outcome.cpu.items()))
    for w in outcome.writes:
        print(
            f"  longest write transaction: {w['process']:<12} (pid {w['pid']}) "
            f"{float(w['ms']):>8.1f} ms in {w['where']} ({w['count']:,} write transactions)"
        )
    for line in outcome.log_lines:
        print(f"  log:    {line}")
    for failure in outcome.failures:
        print(f"  FAIL: {failure}")
    sys.stdout.flush()


def summary(outcomes: list[Outcome]) -> None:
    print(
        "\n| set-up | ingest events/s (slowest 10 s) | ingest p50 / p99 ms "
        "| dashboard p50 / p99 ms | notes | 4xx / 5xx | lost | counters "
        "| longest write tx: serve / worker / simulate |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        ing = [s * 1000 for s in o.rec.latencies["ingest"]]
        dash = [s * 1000 for s in o.rec.latencies["dashboard"]]
        four = sum(
            n for c in o.rec.statuses.values() for s, n in c.items() if s.isdigit() and s[0] == "4"
        )
        done = sum(n for s, n in o.check.notes_by_status.items() if s in TERMINAL)
        print(
            f"| {o.name} ({o.servers} srv, {o.workers} wkr, {o.seconds:.0f} s) "
            f"| {o.events_per_s:,.0f} "
            f"({lowest_window_rate(o.rec.accepted_at, o.seconds, 10):,.0f}) "
            f"| {pct(ing, 0.5):.0f} / {pct(ing, 0.99):.0f} "
            f"| {pct(dash, 0.5):.0f} / {pct(dash, 0.99):.0f} "
            f"| {done}/{o.check.notes_total} done | {four} / {o.server_errors} "
            f"| {o.check.lost} | {'equal' if not o.check.counter_mismatches else 'DIFFER'} "
            f"| {o.longest_write('serve')} / {o.longest_write('worker')} "
            f"/ {o.longest_write('simulate')} |"
        )


# --- one set-up, start to finish ----------------------------------------------------------------


@contextlib.contextmanager
def started(name: str) -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix=f"vw-load-{name}-"))
    stack = None
    try:
        stack = start_embedded(workdir) if name == "embedded" else start_scale_out(workdir)
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_setup(name: str, seconds: float, *, drain_s: float = 300, **load: Any) -> Outcome:
    """Start the set-up, load it, drain, stop it and check the store."""
    with started(name) as stack:
        cpu_before = time.process_time()
        rec, source, elapsed = run_load(stack, seconds, **load)
        engine = make_engine(stack.database_url, pool=False)
        try:
            drained = drain(engine, drain_s)
        finally:
            engine.dispose()
        servers, workers = len(stack.urls), len(stack.procs) - len(stack.urls)
        cpu = {**stack.cpu_seconds(), "load client (this)": time.process_time() - cpu_before}
        stack.stop()  # every writer gone before the counters are recounted
        outcome = Outcome(
            name, elapsed, rec, check(stack, rec, source), drained, servers, workers, cpu
        )
        outcome.log_lines = stack.log_findings()
        outcome.writes = stack.longest_writes()
    report(outcome)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--only", choices=("embedded", "scale-out"))
    parser.add_argument("--ingest-clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--dashboard-clients", type=int, default=2)
    parser.add_argument("--think", type=float, default=0.2, help="dashboard pause per round, s")
    parser.add_argument("--notes-per-s", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=300, help="longest wait for the workers, s")
    args = parser.parse_args(argv)
    names = [args.only] if args.only else ["embedded", "scale-out"]
    print(
        f"load: {args.seconds:.0f} s per set-up; {args.ingest_clients} ingest clients x "
        f"{args.batch}-event batches, {args.dashboard_clients} dashboard clients, "
        f"{args.notes_per_s:g} notes/s; {os.cpu_count()} CPUs",
        flush=True,
    )
    outcomes = [
        run_setup(
            name,
            args.seconds,
            drain_s=args.drain,
            ingest_clients=args.ingest_clients,
            batch=args.batch,
            dashboard_clients=args.dashboard_clients,
            think_s=args.think,
            notes_per_s=args.notes_per_s,
        )
        for name in names
    ]
    summary(outcomes)
    failed = [f"{o.name}: {f}" for o in outcomes for f in o.failures]
    if failed:
        print("\nFAILED:\n  " + "\n  ".join(failed))
        return 1
    print("\nno 5xx, nothing lost, counters equal a recount, every note finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
