"""``application/json``: OTLP's JSON encoding into ``Span`` values.

The OTLP JSON mapping differs from protobuf's generic one: trace and span ids
are hex strings (not base64), enums are integers, 64-bit integers may come as
strings or numbers, and unknown fields are ignored. Field names are
lowerCamelCase; the proto's snake_case names are accepted too, as the
protobuf JSON mapping allows. A body that is not an object of that shape is
a 400; a span with bad ids or times is refused alone (partial success).
"""

from __future__ import annotations

import json
import re
from typing import Any

from voicewatch.otlp.errors import DecodeError
from voicewatch.otlp.spans import EXCEPTION_KEYS, Decoded, Span, wanted

_HEX = re.compile(r"[0-9a-fA-F]*")
_MAX_U64 = 2**64 - 1


class _BadSpan(ValueError):
    """One span cannot be used; the message says why."""


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Any, camel: str, snake: str, where: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise DecodeError(f"{where} must be an object")
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{where}.{camel} must be a list")
    return value


def _value(any_value: Any, depth: int = 0) -> Any:
    if not isinstance(any_value, dict) or depth > 16:
        return None
    for name in ("stringValue", "string_value"):
        if name in any_value:
            return any_value[name]
    for name in ("boolValue", "bool_value"):
        if name in any_value:
            return any_value[name]
    for name in ("intValue", "int_value"):
        if name in any_value:
            return _int(any_value[name])
    for name in ("doubleValue", "double_value"):
        if name in any_value:
            raw = any_value[name]
            return float(raw) if isinstance(raw, int | float | str) else None
    array = _get(any_value, "arrayValue", "array_value")
    if isinstance(array, dict):
        return [_value(v, depth + 1) for v in array.get("values") or []]
    kvlist = _get(any_value, "kvlistValue", "kvlist_value")
    if isinstance(kvlist, dict):
        return _attributes(kvlist.get("values"), everything=True, depth=depth + 1)
    return None


def _int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.lstrip("-").isdigit() and len(raw) <= 20:
        return int(raw)
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return None


def _attributes(items: Any, *, everything: bool = False, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        key = item.get("key")
        if isinstance(key, str) and (everything or wanted(key)):
            out[key] = _value(item.get("value"), depth)
    return out


def _hex_id(raw: Any, size: int, name: str, *, optional: bool = False) -> str:
    if raw in (None, "") and optional:
        return ""
    if not isinstance(raw, str) or len(raw) != size * 2 or not _HEX.fullmatch(raw):
        raise _BadSpan(f"a span's {name} must be {size * 2} hex digits")
    if not optional and not raw.strip("0"):
        raise _BadSpan(f"a span's {name} must not be all zeros")
    return raw.lower()


def _nanos(raw: Any, name: str) -> int:
    number = _int(raw)
    if number is None or not 0 <= number <= _MAX_U64:
        raise _BadSpan(f"a span's {name} must be a uint64 (a number or a string of digits)")
    return number


def _exception(events: Any) -> dict[str, Any]:
    if not isinstance(events, list):
        return {}
    for event in events:
        if isinstance(event, dict) and event.get("name") == "exception":
            found = _attributes(event.get("attributes"), everything=True)
            return {k: v for k, v in found.items() if k in EXCEPTION_KEYS}
    return {}


def _span(raw: Any, defaults: dict[str, Any]) -> Span:
    if not isinstance(raw, dict):
        raise _BadSpan("a span must be an object")
    found = raw.get("status")
    status: dict[str, Any] = found if isinstance(found, dict) else {}
    code = _int(status.get("code", 0)) or 0
    message = status.get("message") or ""
    name = raw.get("name") or ""
    attributes = _attributes(raw.get("attributes"))
    if defaults:
        attributes = {**defaults, **attributes}
    return Span(
        trace_id=_hex_id(_get(raw, "traceId", "trace_id"), 16, "traceId"),
        span_id=_hex_id(_get(raw, "spanId", "span_id"), 8, "spanId"),
        parent_span_id=_hex_id(
            _get(raw, "parentSpanId", "parent_span_id"), 8, "parentSpanId", optional=True
        ),
        name=name if isinstance(name, str) else "",
        start_ns=_nanos(_get(raw, "startTimeUnixNano", "start_time_unix_nano"), "start time"),
        end_ns=_nanos(_get(raw, "endTimeUnixNano", "end_time_unix_nano"), "end time"),
        status_code=code,
        status_message=message if isinstance(message, str) else "",
        attributes=attributes,
        exception=_exception(raw.get("events")) if code == 2 else {},
    )


def decode_json(body: bytes) -> Decoded:
    """Parse ``body``; ``DecodeError`` (a 400) when it is not OTLP JSON traces."""
    if not body.strip():
        return Decoded()
    try:
        doc = json.loads(body)
    except RecursionError as exc:
        raise DecodeError("the JSON is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"the body is not valid JSON: {str(exc)[:120]}") from exc
    out = Decoded()
    for resource_spans in _list(doc, "resourceSpans", "resource_spans", "the body"):
        resource = resource_spans.get("resource") if isinstance(resource_spans, dict) else None
        defaults = _attributes(resource.get("attributes")) if isinstance(resource, dict) else {}
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans", "resourceSpans[]"):
            for raw in _list(scope_spans, "spans", "spans", "scopeSpans[]"):
                try:
                    out.spans.append(_span(raw, defaults))
                except _BadSpan as exc:
                    out.rejected.append(str(exc))
    return out


def encode_response(rejected_spans: int, error_message: str) -> bytes:
    """``ExportTraceServiceResponse`` in OTLP JSON (``{}`` when everything was accepted)."""
    if not (rejected_spans or error_message):
        return b"{}"
    partial = {"rejectedSpans": str(rejected_spans), "errorMessage": error_message}
    return json.dumps({"partialSuccess": partial}).encode()
