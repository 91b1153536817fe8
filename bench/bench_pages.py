"""Page server time with a big store (figures printed, not asserted).

Fills a SQLite store with ``--events`` events (default 1,000,000, realistic
pipeline stories over the last 7 days, through the real ``log_events``) and
``--artifacts`` artifact rows (default 100,000, with two claims each), builds
the hourly and daily snapshots, then times every dashboard page over HTTP
against a real server on loopback (median and p95 of 20 requests each).
Goal (issue 5): every page under 150 ms.

Run: .venv/bin/python bench/bench_pages.py [--events N] [--artifacts N]
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from voicewatch import alerts, metrics
from voicewatch.auth import create_token
from voicewatch.clock import DAY_MS, HOUR_MS, now_ms
from voicewatch.config import Settings
from voicewatch.events import log_events
from voicewatch.simulate import DEMO_ORGANIZATIONS, traffic
from voicewatch.store import write_transaction
from voicewatch.store.tables import organizations, voice_note_artifacts, voice_note_claims
from voicewatch.web.app import create_app

PAGES = (
    "/",
    "/overview/live",
    "/pipeline",
    "/pipeline/transcription",
    "/artifacts",
    "/artifacts?status=failed",
    "/artifacts/{artifact}",
    "/events",
    "/events?event_type=artifact_failed",
    "/metrics?range=24h",
    "/metrics?range=30d",
    "/alerts",
)


def fill_events(engine, events: int, now: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    per_artifact = 14
    written = 0
    started = time.perf_counter()
    while written < events:
        chunk = traffic(rng, artifacts=700, start_ms=now - 7 * DAY_MS, end_ms=now - 60_000)
        for i in range(0, len(chunk), 1000):
            written += log_events(engine, chunk[i : i + 1000]).accepted
        if written and written % 100_000 < 700 * per_artifact:
            print(f"  {written:,} events ({written / (time.perf_counter() - started):,.0f}/s)")
    print(f"  {written:,} events in {time.perf_counter() - started:.0f} s")


def fill_artifacts(engine, artifacts: int, now: int) -> str:  # type: ignore[no-untyped-def]
    rng = random.Random(12)
    statuses = ["completed"] * 17 + ["failed", "processing", "received"]
    with write_transaction(engine) as conn:
        for org_id, name in DEMO_ORGANIZATIONS:
            conn.execute(
                organizations.insert().values(organization_id=org_id, name=name, created_at=now)
            )
    first = ""
    for start in range(0, artifacts, 5000):
        rows, claims = [], []
        for i in range(start, min(start + 5000, artifacts)):
            created = now - rng.randrange(7 * DAY_MS)
            artifact_id = f"art_bench{i:08d}"
            first = first or artifact_id
            status = rng.choice(statuses)
            rows.append(
                {
                    "artifact_id": artifact_id,
                    "organization_id": rng.choice(DEMO_ORGANIZATIONS)[0],
                    "coach_user_id": f"coach_{i % 40}",
                    "source_channel": rng.choice(["whatsapp", "app"]),
                    "kind": "text",
                    "text": "Sean hurt his ankle at training",
                    "status": status,
                    "current_stage": "draft_generation",
                    "completed_stage": "draft_generation",
                    "attempt": 0,
                    "created_at": created,
                    "updated_at": created + 9000,
                    "completed_at": created + 9000 if status == "completed" else None,
                }
            )
            for ordinal in range(2):
                claims.append(
                    {
                        "claim_id": f"{artifact_id}.c{ordinal}",
                        "artifact_id": artifact_id,
                        "organization_id": "org_clg",
                        "ordinal": ordinal,
                        "topic": "injury",
                        "source_text": "Sean hurt his ankle",
                        "mentioned_names": '["Sean"]',
                        "extraction_confidence": 0.8,
                        "status": "resolved",
                        "created_at": created,
                    }
                )
        with write_transaction(engine) as conn:
            conn.execute(voice_note_artifacts.insert(), rows)
            conn.execute(voice_note_claims.insert(), claims)
    return first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--artifacts", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vw-pages-"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'big.db'}")
    app = create_app(settings)
    engine = app.state.engine
    now = now_ms()
    print(f"filling {args.events:,} events and {args.artifacts:,} artifacts into {workdir}")
    fill_events(engine, args.events, now)
    artifact = fill_artifacts(engine, args.artifacts, now)
    started = time.perf_counter()
    metrics.aggregate_range(engine, now - 7 * DAY_MS, now - now % HOUR_MS, "hourly")
    metrics.aggregate_range(engine, now - 7 * DAY_MS, now - now % DAY_MS, "daily")
    alerts.check_health(engine)
    print(f"  snapshots built in {time.perf_counter() - started:.1f} s")
    token = create_token(engine, scope="staff", name="bench")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(f"{'page':40} {'median':>9} {'p95':>9}")
    worst = 0.0
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        for page in PAGES:
            path = page.format(artifact=artifact)
            client.get(path)  # warm up
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
            times.sort()
            median, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
            worst = max(worst, median)
            print(f"{path[:40]:40} {median:7.1f}ms {p95:7.1f}ms")
    print(f"slowest page median: {worst:.1f} ms (goal: every page under 150 ms)")
    server.should_exit = True


if __name__ == "__main__":
    main()
