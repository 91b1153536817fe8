"""Helpers for the OTLP tests: a real OpenTelemetry SDK aimed at a live server, and
hand-written OTLP JSON bodies in the shape of the specification's example."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from conftest import LiveServer


class Traced:
    """A tracer provider exporting over OTLP/HTTP protobuf to ``server``, keeping a copy."""

    def __init__(self, server: LiveServer, token: str | None = None) -> None:
        self.endpoint = f"{server.url}/v1/traces"
        self.headers = {"Authorization": f"Bearer {token or server.ingest_token}"}
        self.exporter = OTLPSpanExporter(endpoint=self.endpoint, headers=self.headers, timeout=10)
        self.copy = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "coach-notes"}))
        self.provider.add_span_processor(
            BatchSpanProcessor(self.exporter, max_export_batch_size=512)
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.copy))
        self.tracer: Tracer = self.provider.get_tracer("tests.otlp")

    def flush(self) -> None:
        assert self.provider.force_flush(10_000), "the SDK could not export its spans"

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.copy.get_finished_spans()

    def export_again(self, spans: Sequence[ReadableSpan]) -> Any:
        """What an exporter's retry does: the same spans, a fresh exporter."""
        again = OTLPSpanExporter(endpoint=self.endpoint, headers=self.headers, timeout=10)
        try:
            return again.export(spans)
        finally:
            again.shutdown()

    def close(self) -> None:
        self.provider.shutdown()


@contextmanager
def traced(server: LiveServer, token: str | None = None) -> Iterator[Traced]:
    t = Traced(server, token)
    try:
        yield t
    finally:
        t.close()


def run_pipeline(tracer: Tracer, artifact_id: str, org: str, *, fail_at: str | None) -> None:
    """A voice note through four traced stages, the way a team's own code would do it."""
    note = {
        "voicewatch.artifact_id": artifact_id,
        "voicewatch.organization_id": org,
        "voicewatch.coach_user_id": "coach_7",
    }
    try:
        with tracer.start_as_current_span("handle_voice_note", attributes=note):
            for stage, extra in (
                ("transcription", {"voicewatch.transcript_word_count": 42}),
                ("claims_extraction", {"voicewatch.claim_count": 3}),
                ("entity_resolution", {"voicewatch.entity_count": 2}),
                ("draft_generation", {"voicewatch.draft_count": 3}),
            ):
                attrs = {"voicewatch.pipeline_stage": stage, **extra}
                with tracer.start_as_current_span(stage, attributes=attrs):
                    with tracer.start_as_current_span("db.query"):  # maps to nothing
                        time.sleep(0.002)
                    if stage == fail_at:
                        raise TimeoutError(f"{stage} timed out after 30 s")
    except TimeoutError:
        pass


# --- OTLP JSON, as in the specification's example ---------------------------------------------


def hex_id(n: int, size: int) -> str:
    return f"{n:0{size * 2}x}"


def json_span(
    trace: str,
    span: str,
    parent: str,
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, Any],
    *,
    error: str | None = None,
) -> dict[str, Any]:
    """One span in OTLP JSON: hex ids, integer enums, 64-bit numbers as strings."""

    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": v}

    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(end_ns),
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
        "droppedAttributesCount": 0,
        "events": [],
        "status": {},
        "flags": 257,  # a field this receiver does not use: ignored
    }
    if error is not None:
        out["status"] = {"code": 2, "message": "stage failed"}
        out["events"] = [
            {
                "timeUnixNano": str(end_ns),
                "name": "exception",
                "attributes": [
                    {"key": "exception.type", "value": {"stringValue": "RuntimeError"}},
                    {"key": "exception.message", "value": {"stringValue": error}},
                ],
            }
        ]
    return out


def json_body(spans: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": "my.service"}}
                        ]
                    },
                    "scopeSpans": [
                        {
                            "scope": {"name": "my.library", "version": "1.0.0"},
                            "spans": spans,
                            "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
                        }
                    ],
                }
            ]
        }
    ).encode()


def json_pipeline(artifact_id: str, org: str, start_ns: int, *, fail: bool) -> bytes:
    """A note span with two stages (the second failing when ``fail``), as OTLP JSON."""
    trace = os.urandom(16).hex()
    root, first, second = (os.urandom(8).hex() for _ in range(3))
    ms = 1_000_000
    spans = [
        json_span(
            trace,
            first,
            root,
            "transcribe",
            start_ns + 1 * ms,
            start_ns + 20 * ms,
            {"voicewatch.pipeline_stage": "transcription"},
        ),
        json_span(
            trace,
            second,
            root,
            "extract",
            start_ns + 21 * ms,
            start_ns + 40 * ms,
            {"voicewatch.pipeline_stage": "claims_extraction", "voicewatch.claim_count": 2},
            error="the model returned no JSON" if fail else None,
        ),
        json_span(
            trace,
            root,
            "",
            "note",
            start_ns,
            start_ns + 41 * ms,
            {"voicewatch.artifact_id": artifact_id, "voicewatch.organization_id": org},
            error="the model returned no JSON" if fail else None,
        ),
    ]
    return json_body(spans)
