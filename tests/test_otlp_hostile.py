"""Bad OTLP input against a live server: each is a clear 4xx or a partial success, never
a 5xx or a hang, and nothing else is lost (good spans sent after it still land)."""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from conftest import LiveServer
from otlp_traces import json_body, json_pipeline, json_span
from voicewatch import event_queries

PROTOBUF = "application/x-protobuf"
URL = "/v1/traces"


def _proto_span(artifact: str, attrs: dict[str, str] | None = None) -> Span:
    start = time.time_ns()
    values = {"voicewatch.pipeline_stage": "transcription", "voicewatch.artifact_id": artifact}
    values.update(attrs or {})
    return Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name="transcribe",
        start_time_unix_nano=start,
        end_time_unix_nano=start + 3_000_000,
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in values.items()],
    )


def _request(*spans: Span) -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]
    )
    return request.SerializeToString()


def _post(server: LiveServer, body: bytes, ctype: str = PROTOBUF, **headers: str) -> httpx.Response:
    sent = {**server.headers(server.ingest_token), "Content-Type": ctype, **headers}
    answer = httpx.post(f"{server.url}{URL}", content=body, headers=sent, timeout=30)
    assert answer.status_code < 500, answer.text[:300]
    return answer


def _still_lands(server: LiveServer, name: str) -> None:
    """Nothing else lost: a good span sent afterwards lands."""
    assert _post(server, _request(_proto_span(name))).status_code == 200
    types = [e["event_type"] for e in event_queries.artifact_timeline(server.engine, name)]
    assert types == ["transcription_started", "transcription_completed"]


@pytest.fixture
def server(sqlite_server: LiveServer) -> Iterator[LiveServer]:
    """Decoding does not depend on the store: SQLite only (test_otlp_sdk runs both)."""
    yield sqlite_server


def test_truncated_protobuf_is_400_in_protobuf(server: LiveServer) -> None:
    whole = _request(_proto_span("art_t1"), _proto_span("art_t2"))
    answer = _post(server, whole[: len(whole) - 7])
    assert answer.status_code == 400
    assert answer.headers["content-type"] == PROTOBUF
    from google.rpc.status_pb2 import Status

    status = Status.FromString(answer.content)
    assert status.code == 3 and "not an OTLP ExportTraceServiceRequest" in status.message
    assert event_queries.artifact_timeline(server.engine, "art_t1") == []
    _still_lands(server, "art_after_truncated")


def test_protobuf_of_another_message_is_refused(server: LiveServer) -> None:
    other = ExportMetricsServiceRequest()
    metrics = other.resource_metrics.add()
    metrics.resource.attributes.add(key="service.name").value.string_value = "svc"
    gauge = metrics.scope_metrics.add().metrics.add(name="queue_depth")
    point = gauge.gauge.data_points.add(as_int=7, time_unix_nano=time.time_ns())
    point.attributes.add(key="voicewatch.artifact_id").value.string_value = "art_metric"
    answer = _post(server, other.SerializeToString())
    if answer.status_code == 200:  # parsed as traces: every "span" refused
        reply = ExportTraceServiceResponse.FromString(answer.content)
        assert reply.partial_success.rejected_spans >= 1, reply
    else:
        assert answer.status_code == 400
    with server.engine.connect() as conn:
        from sqlalchemy import func, select

        from voicewatch.store.tables import voice_pipeline_events

        assert conn.execute(select(func.count()).select_from(voice_pipeline_events)).scalar() == 0
    _still_lands(server, "art_after_metrics")


@pytest.mark.parametrize(
    "bad",
    [
        {"traceId": "zz" * 16},
        {"traceId": "ab" * 15},
        {"spanId": ""},
        {"spanId": "00" * 8},
        {"parentSpanId": "1234"},
        {"startTimeUnixNano": "soon"},
        {"endTimeUnixNano": "-5"},
    ],
)
def test_json_with_bad_ids_or_times_is_a_partial_success(server: LiveServer, bad: dict) -> None:
    start = time.time_ns()
    good = json_span("ab" * 16, "cd" * 8, "", "ok", start, start + 1_000_000,
                     {"voicewatch.event_type": "draft_confirmed",
                      "voicewatch.artifact_id": "art_json_ok"})  # fmt: skip
    broken = {**good, **bad, "spanId": bad.get("spanId", "ef" * 8)}
    answer = _post(server, json_body([broken, good]), "application/json")
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1", partial
    assert "1 span(s) refused" in partial["errorMessage"]
    types = [e["event_type"] for e in event_queries.artifact_timeline(server.engine, "art_json_ok")]
    assert types == ["draft_confirmed"]


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b'{"resourceSpans": 5}', b'{"resourceSpans": [{"scopeSpans": "x"}]}', b"{nope"],
)
def test_json_that_is_not_traces_is_400(server: LiveServer, body: bytes) -> None:
    answer = _post(server, body, "application/json")
    assert answer.status_code == 400
    assert answer.json()["error"] and "detail" in answer.json()


def _gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes gzipped a megabyte at a time: never held whole, never on disk."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    parts = [packer.compress(chunk) for _ in range(size >> 20)]
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _gzip_bomb(1 << 30)


def test_a_1_gb_gzip_bomb_is_413_without_inflating_it(server: LiveServer, bomb: bytes) -> None:
    assert len(bomb) < server.settings.max_body_bytes  # passes the limit before inflating
    began = time.monotonic()
    answer = _post(server, bomb, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 413, answer.text
    assert time.monotonic() - began < 20
    _still_lands(server, "art_after_bomb")


def test_bodies_over_the_limit_before_inflating_are_413(server: LiveServer) -> None:
    too_big = os.urandom(server.settings.max_body_bytes + 1)
    assert _post(server, too_big, **{"Content-Encoding": "gzip"}).status_code == 413
    assert _post(server, too_big, "application/json").status_code == 413


def test_ten_thousand_attributes_on_a_span_still_map(server: LiveServer) -> None:
    span = _proto_span("art_wide", {f"noise.{i}": "x" * 20 for i in range(10_000)})
    answer = _post(server, gzip.compress(_request(span)), **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200
    assert not ExportTraceServiceResponse.FromString(answer.content).HasField("partial_success")
    types = [e["event_type"] for e in event_queries.artifact_timeline(server.engine, "art_wide")]
    assert types == ["transcription_started", "transcription_completed"]


def test_non_utf8_strings_are_refused_clearly(server: LiveServer) -> None:
    raw = bytearray(_request(_proto_span("art_utf8_ok")))
    at = raw.find(b"art_utf8_ok")
    raw[at : at + 3] = b"\xff\xfe\xfd"  # same length: the protobuf framing stays valid
    answer = _post(server, bytes(raw))
    assert answer.status_code == 400  # protobuf strings must be UTF-8
    answer = _post(server, b'{"resourceSpans": [\xff]}', "application/json")
    assert answer.status_code == 400
    # a lone surrogate is valid JSON text but no valid artifact id: that span alone is refused
    start = time.time_ns()
    lone = json_span("12" * 16, "34" * 8, "", "s", start, start + 1000,
                     {"voicewatch.event_type": "draft_confirmed",
                      "voicewatch.artifact_id": "art_\ud800"})  # fmt: skip
    body = json_body([lone])
    assert b"\\ud800" in body  # json.dumps escapes the lone surrogate
    answer = _post(server, body, "application/json")
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "artifact_id" in answer.json()["partialSuccess"]["errorMessage"]
    _still_lands(server, "art_after_utf8")


def test_wrong_content_type_encoding_or_token(server: LiveServer) -> None:
    body = json_pipeline("art_auth", "org_a", time.time_ns(), fail=False)
    assert _post(server, body, "text/plain").status_code == 415
    assert _post(server, body, "application/json", **{"Content-Encoding": "br"}).status_code == 415
    bad = httpx.post(f"{server.url}{URL}", content=body, headers={"Content-Type": PROTOBUF})
    assert bad.status_code == 401
    wrong = {"Authorization": "Bearer vw_not_a_token", "Content-Type": "application/json"}
    denied = httpx.post(f"{server.url}{URL}", content=body, headers=wrong)
    assert denied.status_code == 401 and denied.json()["error"] == "invalid or revoked token"
    assert event_queries.artifact_timeline(server.engine, "art_auth") == []
    assert _post(server, body, "application/json").status_code == 200
    assert len(event_queries.artifact_timeline(server.engine, "art_auth")) == 6


def test_spans_about_a_pipeline_artifact_are_refused_for_ingest_tokens(server: LiveServer) -> None:
    """``/api/v1/events``' rule at this door too: only the pipeline (or staff) writes
    the events of the built-in pipeline's artifacts; other spans of the request land."""
    from voicewatch.pipeline import clubs
    from voicewatch.pipeline import repository as repo

    clubs.upsert_organization(server.engine, "org_a", "Club A")
    ours = repo.create_artifact(
        server.engine,
        organization_id="org_a",
        coach_user_id="coach_a",
        source_channel="app",
        text="Sean was late.",
    )["artifact_id"]
    answer = _post(server, _request(_proto_span(ours), _proto_span("art_outside")))
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 1 and "built-in pipeline" in partial.error_message
    assert event_queries.artifact_timeline(server.engine, ours) == []
    assert len(event_queries.artifact_timeline(server.engine, "art_outside")) == 2
    assert repo.get_artifact(server.engine, ours)["status"] == "received"
    staff = {**server.headers(), "Content-Type": PROTOBUF}
    sent = httpx.post(f"{server.url}{URL}", content=_request(_proto_span(ours)), headers=staff)
    assert sent.status_code == 200
    assert len(event_queries.artifact_timeline(server.engine, ours)) == 2
