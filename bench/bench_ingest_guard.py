"""What the issue-16 checks cost on HTTP ingest: events/s with an ingest token
(namespace check: one indexed read per batch against the artifact table) and
with a staff token (no check), through the real server and every middleware
(body cap, security headers, ...), into a fresh SQLite file.

    .venv/bin/python bench/bench_ingest_guard.py [--batches 60] [--batch 1000] [--artifacts 2000]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

from voicewatch.auth import create_token
from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.web.app import create_app
from voicewatch.web.serving import server_options


def _serve(settings: Settings) -> tuple[uvicorn.Server, str, object]:
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", **server_options(settings))
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}", app


def _batch(size: int, artifact_ids: list[str], n: int) -> list[dict[str, object]]:
    """Events of another pipeline, each naming an artifact id (so the check has work)."""
    ts = now_ms()
    return [
        {
            "event_id": f"ext-{n}-{i}-{uuid.uuid4().hex[:8]}",
            "event_type": "transcription_completed",
            "artifact_id": f"ext_{artifact_ids[(n * size + i) % len(artifact_ids)]}",
            "pipeline_stage": "transcription",
            "duration_ms": 1200,
            "timestamp": ts,
        }
        for i in range(size)
    ]


def _run(url: str, token: str, batches: int, size: int, ids: list[str]) -> tuple[float, float]:
    times = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        started = time.perf_counter()
        for n in range(batches):
            body = _batch(size, ids, n + int(time.time() * 1000))
            t0 = time.perf_counter()
            answer = client.post("/api/v1/events", json=body, timeout=60)
            times.append(time.perf_counter() - t0)
            assert answer.status_code == 200 and answer.json()["accepted"] == size, answer.text
        elapsed = time.perf_counter() - started
    return batches * size / elapsed, statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--artifacts", type=int, default=2000, help="built-in artifacts stored")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url_db = f"sqlite:///{Path(tmp) / 'bench.db'}"
        server, url, app = _serve(Settings(database_url=url_db, queue_url=f"sqlite:///{tmp}/q.db"))
        engine = app.state.engine  # type: ignore[attr-defined]
        clubs.upsert_organization(engine, "org_b", "Bench")
        for i in range(args.artifacts):
            repo.create_artifact(
                engine, organization_id="org_b", coach_user_id="c", source_channel="app",
                text=f"note {i}",
            )  # fmt: skip
        ids = [uuid.uuid4().hex[:20] for _ in range(args.batch * 2)]
        ingest = create_token(engine, scope="ingest", name="bench ingest")
        staff = create_token(engine, scope="staff", name="bench staff")
        _run(url, staff, 3, args.batch, ids)  # warm up
        for label, token in (("staff token (no check)", staff), ("ingest token (checked)", ingest)):
            rate, median_ms = _run(url, token, args.batches, args.batch, ids)
            print(f"{label:24s} {rate:9,.0f} events/s   median {median_ms:6.1f} ms per batch")
        server.should_exit = True


if __name__ == "__main__":
    main()
