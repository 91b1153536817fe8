"""One entry point: a request body, its content type and encoding -> ``Decoded`` spans.

Encodings (OTLP/HTTP): ``application/x-protobuf`` and ``application/json``,
each optionally ``Content-Encoding: gzip``. The answer goes back in the
request's content type, so ``encode_response`` / ``encode_error`` take it too.
"""

from __future__ import annotations

import json

from voicewatch.otlp import decode_json, decode_proto
from voicewatch.otlp.errors import DecodeError
from voicewatch.otlp.gunzip import BadGzip, gunzip_limited
from voicewatch.otlp.spans import Decoded

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)

#: google.rpc.Code values used in error bodies.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 503: 14, 507: 8}


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` other than gzip or identity (a 415)."""


def media_type(content_type: str | None) -> str:
    """The bare media type, lowercased (``application/json; charset=utf-8`` gives JSON)."""
    return (content_type or "").split(";")[0].strip().lower()


def inflate(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body after ``Content-Encoding``; ``TooLarge`` past ``max_bytes`` once inflated."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        try:
            return gunzip_limited(body, max_bytes)
        except BadGzip as exc:
            raise DecodeError(str(exc)) from exc
    raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding[:32]!r}: send gzip or none")


def decode(body: bytes, content_type: str) -> Decoded:
    """Decode an inflated body of ``content_type`` (one of ``CONTENT_TYPES``)."""
    if content_type == PROTOBUF:
        return decode_proto.decode_protobuf(body)
    return decode_json.decode_json(body)


def encode_response(content_type: str, rejected_spans: int, error_message: str) -> bytes:
    if content_type == PROTOBUF:
        return decode_proto.encode_response(rejected_spans, error_message)
    return decode_json.encode_response(rejected_spans, error_message)


def encode_error(content_type: str, status: int, message: str) -> tuple[bytes, str]:
    """An error body (``google.rpc.Status``) in the request's content type.

    The JSON form also carries the contract's ``{"error", "detail"}`` keys, so
    it reads like every other voicewatch error.
    """
    code = _GRPC_CODES.get(status, 2)
    if content_type == PROTOBUF:
        return decode_proto.encode_status(code, message), PROTOBUF
    body = {"error": message, "detail": None, "code": code, "message": message}
    return json.dumps(body).encode(), JSON
