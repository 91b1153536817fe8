"""``application/x-protobuf``: an ``ExportTraceServiceRequest`` into ``Span`` values.

The message is parsed by the ``opentelemetry-proto`` package (protobuf's C
parser), which also refuses invalid UTF-8 in string fields. Spans whose ids
have the wrong length (what a message of another type parsed as this one
tends to give) are refused one by one, not the whole request.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from voicewatch.otlp.errors import DecodeError
from voicewatch.otlp.spans import EXCEPTION_KEYS, GENAI_KEYS, VOICEWATCH_PREFIX, Decoded, Span


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


#: ``AnyValue`` kinds read straight off the message (arrays and maps go through ``_value``).
_SCALARS = frozenset({"string_value", "bool_value", "int_value", "double_value", "bytes_value"})


def _attributes(key_values: Any) -> dict[str, Any]:
    """The attributes the mapping reads (``spans.wanted``), the rest skipped unread.

    This runs for every attribute of every span, so the common scalar value is
    taken inline rather than through ``_value`` (a measured third of decoding).
    """
    out: dict[str, Any] = {}
    for kv in key_values:
        key = kv.key
        if key.startswith(VOICEWATCH_PREFIX) or key in GENAI_KEYS:
            value = kv.value
            text = value.string_value  # the usual kind: one read (empty when another kind)
            if text:
                out[key] = text
                continue
            kind = value.WhichOneof("value")
            out[key] = getattr(value, kind) if kind in _SCALARS else _value(value)
    return out


def _exception(span: Any) -> dict[str, Any]:
    for event in span.events:
        if event.name == "exception":
            return {kv.key: _value(kv.value) for kv in event.attributes if kv.key in EXCEPTION_KEYS}
    return {}


def decode_protobuf(body: bytes) -> Decoded:
    """Parse ``body``; ``DecodeError`` (a 400) when it is not an ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (ProtoDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"the body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    out = Decoded()
    traces: dict[bytes, str] = {}  # a batch's spans mostly share a few traces: hex them once
    for resource_spans in request.resource_spans:
        defaults = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id, span_id = span.trace_id, span.span_id
                trace_hex = traces.get(trace_id)  # only valid trace ids are kept there
                if trace_hex is None and len(trace_id) == 16 and any(trace_id):
                    trace_hex = traces[trace_id] = trace_id.hex()
                if trace_hex is None or len(span_id) != 8:
                    out.rejected.append("a span's trace_id must be 16 bytes and span_id 8 bytes")
                    continue
                parent = span.parent_span_id
                if parent and len(parent) != 8:
                    out.rejected.append("a span's parent_span_id must be 8 bytes")
                    continue
                attributes = _attributes(span.attributes)
                if defaults:
                    attributes = {**defaults, **attributes}
                status = span.status
                code = status.code
                out.spans.append(
                    Span(
                        trace_hex,
                        span_id.hex(),
                        parent.hex(),
                        span.name,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        code,
                        status.message,
                        attributes,
                        _exception(span) if code == 2 else {},
                    )
                )
    return out


def encode_response(rejected_spans: int, error_message: str) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` set only when there is news."""
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    return response.SerializeToString()


def encode_status(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (field 1 code, field 2 message), the OTLP error body.

    Written by hand: two fields, and no need for the googleapis protos at run time.
    """
    text = message.encode("utf-8", "backslashreplace")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
