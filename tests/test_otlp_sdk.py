"""The real OpenTelemetry SDK exporting to a live server (OTLP/HTTP protobuf), and OTLP
JSON written by hand, plain and gzipped: spans become the artifact's events."""

from __future__ import annotations

import gzip
import time
import uuid

import httpx
from opentelemetry.sdk.trace.export import SpanExportResult

from conftest import LiveServer
from otlp_traces import json_pipeline, run_pipeline, traced
from recount import assert_counters_equal_recount, stored_event_ids
from voicewatch import event_queries, metrics
from voicewatch.clock import now_ms

FAILED_RUN = [
    "artifact_received",
    "transcription_started",
    "transcription_completed",
    "claims_extraction_started",
    "claims_extracted",
    "entity_resolution_started",
    "artifact_failed",
]


def _types(server: LiveServer, artifact_id: str) -> list[str]:
    return [e["event_type"] for e in event_queries.artifact_timeline(server.engine, artifact_id)]


def _state(server: LiveServer, artifact_id: str) -> str:
    failed = {a["artifact_id"] for a in event_queries.failed_artifacts(server.engine)}
    flying = {a["artifact_id"] for a in event_queries.artifacts_in_flight(server.engine)}
    return "failed" if artifact_id in failed else "in_flight" if artifact_id in flying else "?"


def test_sdk_spans_become_the_artifacts_timeline_once(live_server: LiveServer) -> None:
    with traced(live_server) as t:
        run_pipeline(t.tracer, "art_otel_ok", "org_otel", fail_at=None)
        run_pipeline(t.tracer, "art_otel_bad", "org_otel", fail_at="entity_resolution")
        t.flush()
        assert _types(live_server, "art_otel_bad") == FAILED_RUN
        timeline = event_queries.artifact_timeline(live_server.engine, "art_otel_bad")
        failure = timeline[-1]
        assert failure["error_message"] == "entity_resolution timed out after 30 s"
        assert failure["error_code"] == "TimeoutError"
        assert failure["pipeline_stage"] == "entity_resolution"
        assert {e["organization_id"] for e in timeline} == {"org_otel"}
        assert {e["coach_user_id"] for e in timeline} == {"coach_7"}
        claims = next(e for e in timeline if e["event_type"] == "claims_extracted")
        assert claims["metadata"] == {"claim_count": 3}
        assert claims["duration_ms"] >= 2.0
        assert claims["stage_completed_at"] - claims["stage_started_at"] >= 2
        ok = _types(live_server, "art_otel_ok")
        assert ok[0] == "artifact_received" and ok[-1] == "artifact_completed"
        assert ok.count("drafts_generated") == 1 and len(ok) == 10
        assert _state(live_server, "art_otel_bad") == "failed"
        live = metrics.realtime(live_server.engine, now=now_ms())
        assert live["artifacts_received"] == 2
        assert live["artifacts_completed"] == 1
        assert live["artifacts_failed"] == 1
        stored = sorted(stored_event_ids(live_server.engine))
        cells = assert_counters_equal_recount(live_server.engine)

        # An exporter's retry: the same spans again add nothing.
        assert t.export_again(t.spans()) == SpanExportResult.SUCCESS
        assert sorted(stored_event_ids(live_server.engine)) == stored
        assert assert_counters_equal_recount(live_server.engine) == cells
        again = metrics.realtime(live_server.engine, now=now_ms())
        assert again["artifacts_received"] == 2 and again["artifacts_failed"] == 1

    # The seven db.query spans mapped to nothing, counted once per export (twice here).
    text = httpx.get(f"{live_server.url}/metrics", headers=live_server.headers()).text
    assert "voicewatch_otlp_unmapped_spans_60m 14.0" in text
    health = httpx.get(f"{live_server.url}/api/v1/health").json()
    assert health["otlp_unmapped_spans_60m"] == 14


def _post_json(server: LiveServer, body: bytes, *, gzipped: bool) -> httpx.Response:
    headers = {**server.headers(server.ingest_token), "Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return httpx.post(f"{server.url}/v1/traces", content=body, headers=headers, timeout=10)


def test_hand_written_otlp_json_plain_and_gzipped(live_server: LiveServer) -> None:
    start = time.time_ns() - 60_000_000_000
    for gzipped in (False, True):
        artifact = f"art_json_{'gz' if gzipped else 'plain'}"
        body = json_pipeline(artifact, "org_json", start, fail=True)
        answer = _post_json(live_server, body, gzipped=gzipped)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {}
        assert _types(live_server, artifact) == [
            "artifact_received",
            "transcription_started",
            "transcription_completed",
            "claims_extraction_started",
            "claims_extraction_failed",
            "artifact_failed",
        ]
        timeline = event_queries.artifact_timeline(live_server.engine, artifact)
        assert timeline[0]["timestamp"] == start // 1_000_000
        assert timeline[4]["error_message"] == "the model returned no JSON"
        assert timeline[4]["error_code"] == "RuntimeError"
        assert timeline[4]["duration_ms"] == 19.0
        assert _state(live_server, artifact) == "failed"
        # the retry of the same body is a duplicate of every event
        before = sorted(stored_event_ids(live_server.engine))
        assert _post_json(live_server, body, gzipped=gzipped).status_code == 200
        assert sorted(stored_event_ids(live_server.engine)) == before
    assert_counters_equal_recount(live_server.engine)


def test_an_empty_request_succeeds_in_both_encodings(live_server: LiveServer) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    headers = live_server.headers(live_server.ingest_token)
    empty = ExportTraceServiceRequest().SerializeToString()
    answers = {}
    for body, ctype in ((empty, "application/x-protobuf"), (b"", "application/json")):
        answer = httpx.post(
            f"{live_server.url}/v1/traces",
            content=body,
            headers={**headers, "Content-Type": ctype},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == ctype
        answers[ctype] = answer.content
    reply = ExportTraceServiceResponse.FromString(answers["application/x-protobuf"])
    assert not reply.HasField("partial_success")
    assert answers["application/json"] == b"{}"


def test_partial_success_tells_which_spans_were_refused(live_server: LiveServer) -> None:
    trace = uuid.uuid4().hex
    start = time.time_ns()
    from otlp_traces import json_body, json_span

    good = json_span(
        trace, "00000000000000a1", "", "s", start, start + 5_000_000,
        {"voicewatch.pipeline_stage": "transcription", "voicewatch.artifact_id": "art_part"},
    )  # fmt: skip
    bad_id = {**good, "spanId": "not-hex-at-all!"}
    bad_type = json_span(
        trace, "00000000000000a2", "", "s", start, start + 5_000_000,
        {"voicewatch.event_type": "no_such_event", "voicewatch.artifact_id": "art_part"},
    )  # fmt: skip
    answer = _post_json(live_server, json_body([good, bad_id, bad_type]), gzipped=False)
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "2 span(s) refused" in partial["errorMessage"]
    assert "spanId must be 16 hex digits" in partial["errorMessage"]
    assert _types(live_server, "art_part") == ["transcription_started", "transcription_completed"]


def test_span_events_reach_the_live_feed_and_the_alerts(sqlite_server: LiveServer) -> None:
    """What lands from OTLP shows up where native events do: the stream and the alerts."""
    import json as jsonlib

    from voicewatch import alerts
    from voicewatch.alerts.notify import Notifier

    server = sqlite_server
    timeout = httpx.Timeout(10.0, read=5.0)
    with (
        httpx.Client(base_url=server.url, headers=server.headers(), timeout=timeout) as client,
        client.stream("GET", "/api/v1/stream") as response,
    ):
        lines = (ln for ln in response.iter_lines() if ln.startswith("data:"))
        stream = (jsonlib.loads(ln[5:]) for ln in lines)
        next(stream)  # the hello
        start = time.time_ns() - 5_000_000_000
        for n in range(6):  # six notes failing at claims extraction: a failure-rate alert
            body = json_pipeline(f"art_live_{n}", "org_live", start + n * 10**8, fail=True)
            assert _post_json(server, body, gzipped=False).status_code == 200
        deadline = time.monotonic() + 5
        seen: set[str] = set()
        for message in stream:
            if message["type"] == "event" and message["event"]["artifact_id"] == "art_live_5":
                seen.add(message["event"]["event_type"])
            if "claims_extraction_failed" in seen:
                break
            assert time.monotonic() < deadline, f"not in the live feed in time: {seen}"
    report = alerts.check_health(server.engine, notifier=Notifier(stream=None))
    kinds = {a["alert_kind"] for a in report.raised}
    assert "high_failure_rate" in kinds, report
