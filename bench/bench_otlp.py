"""OTLP ingest rate beside native ingest, on SQLite, over HTTP (issue 14).

Two fresh embedded servers (``voicewatch serve`` on a new SQLite file each),
one after the other in the same run, take the same amount of work from
``--clients`` client threads sending back to back:

- native: ``POST /api/v1/events``, batches of ``--batch`` events (512), each a
  stage's started or completed event of 4-stage artifact stories;
- OTLP: ``POST /v1/traces``, ``application/x-protobuf``, batches of
  ``--batch`` spans (512, as the SDK's BatchSpanProcessor sends them), each
  a stage span carrying ``voicewatch.artifact_id`` and
  ``voicewatch.pipeline_stage`` (two events per span: started, completed).

Request bodies are built before the clock starts, so the figures measure the
servers (which share the machine's cores with this client). Prints spans/s,
the events/s they became, native events/s and the ratio; asserts nothing.
Goal (issue 14): OTLP spans/s at least half the native events/s.

    .venv/bin/python bench/bench_otlp.py [--requests 60] [--batch 512] [--clients 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

VOICEWATCH = str(Path(sys.executable).with_name("voicewatch"))
STAGES = ("transcription", "claims_extraction", "entity_resolution", "draft_generation")
NATIVE_TYPES = {
    "transcription": ("transcription_started", "transcription_completed"),
    "claims_extraction": ("claims_extraction_started", "claims_extracted"),
    "entity_resolution": ("entity_resolution_started", "entity_resolution_completed"),
    "draft_generation": ("draft_generation_started", "drafts_generated"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``voicewatch serve`` on a fresh SQLite file, with an ingest token."""

    def __init__(self, workdir: Path) -> None:
        self.env = {**os.environ, "VOICEWATCH_DATABASE_URL": f"sqlite:///{workdir / 'v.db'}"}
        self.env["VOICEWATCH_QUEUE_URL"] = f"sqlite:///{workdir / 'q.db'}"
        subprocess.run([VOICEWATCH, "migrate"], env=self.env, check=True, capture_output=True)
        made = subprocess.run(
            [VOICEWATCH, "create-token", "--scope", "ingest"],
            env=self.env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.token = made.stdout.strip().splitlines()[-1]
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [VOICEWATCH, "serve", "--port", str(port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def native_bodies(requests: int, batch: int, base_ms: int) -> list[bytes]:
    bodies = []
    for r in range(requests):
        items = []
        for i in range(batch):
            artifact, step = divmod(r * batch + i, 8)
            stage = STAGES[step // 2]
            ts = base_ms + (r * batch + i)
            items.append(
                {
                    "event_id": f"bench.{r:06d}.{i:04d}",
                    "event_type": NATIVE_TYPES[stage][step % 2],
                    "timestamp": ts,
                    "artifact_id": f"art_{artifact}",
                    "organization_id": "org_bench",
                    "pipeline_stage": stage,
                    **({"duration_ms": 12.5, "stage_started_at": ts - 12} if step % 2 else {}),
                }
            )
        bodies.append(json.dumps(items).encode())
    return bodies


def otlp_bodies(requests: int, batch: int, base_ms: int) -> list[bytes]:
    bodies = []
    for r in range(requests):
        spans = []
        trace = os.urandom(16)
        for i in range(batch):
            artifact, step = divmod(r * batch + i, 4)
            start = (base_ms + r * batch + i) * 1_000_000
            attrs = {
                "voicewatch.artifact_id": f"art_{artifact}",
                "voicewatch.organization_id": "org_bench",
                "voicewatch.pipeline_stage": STAGES[step],
            }
            spans.append(
                Span(
                    trace_id=trace,
                    span_id=os.urandom(8),
                    name=STAGES[step],
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + 12_500_000,
                    attributes=[
                        KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs.items()
                    ],
                )
            )
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
        )
        bodies.append(request.SerializeToString())
    return bodies


def send_all(url: str, headers: dict[str, str], bodies: list[bytes], clients: int) -> float:
    """Send every body from ``clients`` threads; the wall time in seconds."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(headers=headers, timeout=60) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                answer = http.post(url, content=body)
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return elapsed


def run(
    label: str, make: Callable[[], tuple[str, str, list[bytes]]], clients: int
) -> tuple[float, float]:
    """One side on a fresh server: (wall seconds, server CPU seconds) for its bodies."""
    with tempfile.TemporaryDirectory(prefix=f"bench-otlp-{label}-") as tmp:
        server = Server(Path(tmp))
        try:
            route, ctype, bodies = make()
            headers = {"Authorization": f"Bearer {server.token}", "Content-Type": ctype}
            send_all(f"{server.url}{route}", headers, bodies[:2], 1)  # warm up
            cpu = server.cpu_seconds()
            wall = send_all(f"{server.url}{route}", headers, bodies[2:], clients)
            return wall, server.cpu_seconds() - cpu
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    args = parser.parse_args()
    base = int(time.time() * 1000) - 3_600_000
    n, size = args.requests + 2, args.batch
    sides: dict[str, list[tuple[float, float]]] = {"native": [], "otlp": []}
    for _ in range(args.rounds):  # alternating, so a busy moment of the machine hits both
        sides["native"].append(
            run(
                "native",
                lambda: ("/api/v1/events", "application/json", native_bodies(n, size, base)),
                args.clients,
            )
        )
        sides["otlp"].append(
            run(
                "otlp",
                lambda: ("/v1/traces", "application/x-protobuf", otlp_bodies(n, size, base)),
                args.clients,
            )
        )
    count = args.requests * size
    native_s, native_cpu = (statistics.median(v) for v in zip(*sides["native"], strict=True))
    otlp_s, otlp_cpu = (statistics.median(v) for v in zip(*sides["otlp"], strict=True))
    native_rate, span_rate = count / native_s, count / otlp_s
    print(
        f"batches of {size}, {args.requests} requests per run, {args.clients} clients, SQLite,"
        f" median of {args.rounds} alternating runs"
    )
    print(
        f"native  /api/v1/events: {native_rate:,.0f} events/s ({native_s:.2f} s);"
        f" server CPU {native_cpu / count * 1e6:.0f} µs per event"
    )
    print(
        f"OTLP    /v1/traces:     {span_rate:,.0f} spans/s = {2 * span_rate:,.0f} events/s"
        f" ({otlp_s:.2f} s); server CPU {otlp_cpu / count * 1e6:.0f} µs per span"
    )
    print(
        f"OTLP spans/s / native events/s: {span_rate / native_rate:.2f}"
        f" (by server CPU: {native_cpu / otlp_cpu:.2f}; goal >= 0.5)"
    )


if __name__ == "__main__":
    main()
