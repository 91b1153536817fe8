"""Hostile input against a real server, on SQLite and PostgreSQL (issue 6).

- schemathesis fuzzes every operation of the server's own ``/openapi.json``
  with a staff token: never a 5xx, every body as declared, every error the
  contract's ``{"error": ..., "detail": ...}``;
- bodies: too large (413), nested too deep (400), the wrong content type
  (415), invalid UTF-8, NUL, lone surrogates, huge numbers, NaN and Infinity
  (a per-item rejection, never stored);
- injection strings in every filter and free-text field: inert, stored and
  returned byte for byte, escaped in pages, neutralised in CSV;
- audio uploads: the client's file name never chooses the path, what is not
  audio is refused, too large is 413.

Bugs found here are ``xfail(strict=True)``: each flips to a failure once fixed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import Engine, func, inspect, select

from conftest import LiveServer
from hostile_strings import FORMULA_LEADS, HOSTILE, MARKUP, NUL
from voicewatch.clock import now_ms
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.audio_store import MAX_AUDIO_BYTES
from voicewatch.store.tables import metadata, voice_note_artifacts, voice_pipeline_events

FUZZ_EXAMPLES = 25  # per operation and generation mode
#: The contract's error body ("Errors are JSON {"error": "...", "detail": ...}").
ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {}},
}
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


# --- a live server with its own audio directory and queue file ---------------------------


def _start(db_url: str, tmp_path: Path) -> LiveServer:
    return LiveServer(
        db_url,
        audio_dir=str(tmp_path / "audio"),
        queue_url=f"sqlite:///{tmp_path / 'queue.db'}",
    )


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server on SQLite and on PostgreSQL; uploads and the queue stay in tmp_path."""
    srv = _start(db_url, tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def lite(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The same on SQLite only (for what does not depend on the database)."""
    srv = _start(sqlite_url, tmp_path)
    yield srv
    srv.stop()


# --- helpers -------------------------------------------------------------------------------


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt_{uuid.uuid4().hex}",
        "event_type": "artifact_received",
        "timestamp": now_ms(),
        **fields,
    }


def _json_headers(server: LiveServer) -> dict[str, str]:
    return {**server.headers(), "Content-Type": "application/json"}


def fail_after_server_logs(message: str) -> None:
    """Fail without a Python traceback, once the server thread has logged its own.

    A 5xx makes the in-process server log a traceback; Python 3.11 formats
    tracebacks with ``ast.parse``, whose recursion guard is shared between
    threads, so pytest formatting a failure at the same moment can die with
    ``SystemError: AST constructor recursion depth mismatch`` (an INTERNALERROR
    that ends the whole run). Waiting a moment and skipping the traceback
    avoids both.
    """
    time.sleep(0.5)
    pytest.fail(message, pytrace=False)


def _no_5xx(response: httpx.Response, where: object) -> None:
    if response.status_code >= 500:
        fail_after_server_logs(f"{where}: {response.status_code} {response.text[:300]}")


def _assert_error_body(content_type: str, text: str) -> None:
    """A contract error: JSON ``{"error": str, "detail": ...}``, never a trace."""
    assert content_type.startswith("application/json"), text[:200]
    body = json.loads(text)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert "detail" in body, body
    assert "Traceback" not in text and 'File "' not in text


def _assert_error_envelope(response: httpx.Response) -> None:
    _assert_error_body(response.headers.get("content-type", ""), response.text)


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _assert_tables_intact(engine: Engine) -> None:
    present = set(inspect(engine).get_table_names())
    missing = {t.name for t in metadata.sorted_tables} - present
    assert not missing, f"tables gone: {missing}"


def _strict_json(text: str) -> Any:
    """Parse JSON the way a strict client does: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"the server sent the non-JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _wav(frames: int = 3200) -> bytes:
    """A real WAV file (16 kHz mono, 16-bit silence), made with the stdlib."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\x00\x00" * frames)
    return buffer.getvalue()


def _get_query_params(spec: dict[str, Any]) -> dict[str, list[str]]:
    """Every GET operation's query parameters, from the server's own OpenAPI description."""
    found: dict[str, list[str]] = {}
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if get is None or "{" in path or path in ("/api/v1/stream", "/api/v1/health"):
            continue
        found[path] = [p["name"] for p in get.get("parameters", []) if p["in"] == "query"]
    return found


def _openapi(server: LiveServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/openapi.json", headers=server.headers())
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


# --- schemathesis over every operation -------------------------------------------------------


def _seed(server: LiveServer) -> None:
    """A little of everything, so queries have rows to walk."""
    clubs.upsert_organization(server.engine, "org_a", "A")
    repo.create_artifact(
        server.engine,
        organization_id="org_a",
        coach_user_id="coach_a",
        source_channel="app",
        text="Sean is out with a knee injury.",
    )
    batch = [
        _event(organization_id="org_a", artifact_id="art_a"),
        _event(event_type="transcription_failed", artifact_id="art_a", error_message="boom"),
    ]
    assert (
        httpx.post(f"{server.url}/api/v1/events", json=batch, headers=server.headers()).json()[
            "accepted"
        ]
        == 2
    )


def _fuzz(server: LiveServer, operation: Any, label: str, codes: dict[int, int]) -> Any:
    """A hypothesis test of one operation: positive and negative cases, derandomized."""

    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    @settings(
        max_examples=FUZZ_EXAMPLES * 2,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=server.url, headers=server.headers(), timeout=10)
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        content_type = response.headers.get("content-type", [""])[0]
        body = json.loads(response.text) if "json" in content_type else None
        if isinstance(body, dict) and "rejected" in body:  # ingest: all rejected is 422
            assert label == "POST /api/v1/events" and response.status_code in (200, 422)
            assert set(body) == {"accepted", "duplicates", "rejected"}, body
        elif response.status_code >= 400:
            _assert_error_body(content_type, response.text)

    return run


def test_schemathesis_finds_no_server_error_nor_schema_violation(server: LiveServer) -> None:
    """Every operation of /openapi.json, positive and negative cases, as staff.

    Checks: ``not_a_server_error``, ``response_schema_conformance`` and the
    contract's error envelope. The description is used as the server sends
    it: its error responses declare the envelope, not FastAPI's default 422.
    """
    _seed(server)
    server.app.state.enqueue = lambda *args: None  # retries queue nothing
    spec = _openapi(server)
    components = spec.get("components", {}).get("schemas", {})
    assert "HTTPValidationError" not in components
    assert ERROR_ENVELOPE["required"] == components["ErrorBody"]["required"]
    schema = schemathesis.openapi.from_dict(spec)
    calls: dict[str, dict[int, int]] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/stream":
            continue  # an endless stream; its access is checked in test_security
        label = f"{operation.method.upper()} {operation.path}"
        calls[label] = {}
        try:
            _fuzz(server, operation, label, calls[label])()
        except BaseException as exc:  # collected, reported below for every operation
            failures[label] = str(exc)[:3000]
    if failures:  # one report for all operations
        fail_after_server_logs("\n\n".join(f"{k}:\n{v}" for k, v in failures.items()))
    # not vacuous: every operation was called, most of them many times
    assert {
        "POST /api/v1/events",
        "GET /api/v1/events",
        "GET /api/v1/events.csv",
        "POST /api/v1/artifacts",
        "GET /api/v1/artifacts",
        "GET /api/v1/alerts",
        "POST /api/v1/artifacts/{artifact_id}/retry",
        "GET /api/v1/metrics/realtime",
        "POST /api/v1/alerts/{alert_id}/acknowledge",
    } <= set(calls)
    assert all(sum(c.values()) >= 1 for c in calls.values()), calls
    assert sum(sum(c.values()) for c in calls.values()) >= 10 * FUZZ_EXAMPLES, calls
    _assert_tables_intact(server.engine)
    assert httpx.get(f"{server.url}/api/v1/health").status_code == 200


def test_openapi_declares_the_error_body_the_server_sends(lite: LiveServer) -> None:
    schema = schemathesis.openapi.from_dict(_openapi(lite))
    operation = schema["/api/v1/events"]["GET"]
    for query in ({"event_type": "no_such_type"}, {"limit": "0"}):
        case = operation.Case(query=query)
        response = case.call(base_url=lite.url, headers=lite.headers(), timeout=10)
        assert response.status_code == 422
        case.validate_response(response, checks=[response_schema_conformance])


# --- bodies ----------------------------------------------------------------------------------


def test_bodies_over_the_limit_are_413_declared_or_streamed(server: LiveServer) -> None:
    url = f"{server.url}/api/v1/events"
    limit = server.settings.max_body_bytes
    headers = _json_headers(server)
    at_limit = b"[" + b" " * (limit - 2) + b"]"  # exactly the limit: read, then judged
    response = httpx.post(url, content=at_limit, headers=headers, timeout=30)
    assert response.status_code == 422 and response.json()["error"] == "the batch is empty"
    declared = httpx.post(url, content=at_limit + b" ", headers=headers, timeout=30)
    assert declared.status_code == 413
    _assert_error_envelope(declared)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server must count
        yield b"["
        for _ in range(limit // 65_536 + 2):
            yield b" " * 65_536
        yield b"]"

    streamed = httpx.post(url, content=chunked(), headers=headers, timeout=30)
    assert streamed.status_code == 413
    _assert_error_envelope(streamed)
    assert _count(server.engine, voice_pipeline_events) == 0
    assert httpx.get(f"{server.url}/api/v1/health").status_code == 200


def test_the_retry_route_refuses_bodies_over_the_limit(lite: LiveServer) -> None:
    lite.app.state.enqueue = lambda *args: None
    pad = b"a" * lite.settings.max_body_bytes
    body = b'{"stage": "full", "pad": "' + pad + b'"}'
    response = httpx.post(
        f"{lite.url}/api/v1/artifacts/art_x/retry",
        content=body,
        headers=_json_headers(lite),
        timeout=30,
    )
    assert response.status_code == 413
    _assert_error_envelope(response)


def test_deeply_nested_json_is_400_never_a_crash(server: LiveServer) -> None:
    server.app.state.enqueue = lambda *args: None
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"metadata": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001
    past_the_stack = b"[" * 5_000 + b"]" * 5_000  # deeper than Python's recursion limit, 10 kB
    for path, body in (
        ("/api/v1/events", deep),
        ("/api/v1/events", deep_object),
        ("/api/v1/artifacts/art_x/retry", past_the_stack),
        ("/api/v1/artifacts/art_x/retry", b'{"stage": ' + past_the_stack + b"}"),
    ):
        response = httpx.post(
            f"{server.url}{path}", content=body, headers=_json_headers(server), timeout=30
        )
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        _assert_error_envelope(response)
    assert _count(server.engine, voice_pipeline_events) == 0
    assert httpx.get(f"{server.url}/api/v1/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "text/csv",
        "application/octet-stream",
    ],
)
def test_events_in_a_wrong_content_type_are_415(lite: LiveServer, content_type: str) -> None:
    body = json.dumps(_event()).encode()  # a valid event: only the type is wrong
    response = httpx.post(
        f"{lite.url}/api/v1/events",
        content=body,
        headers={**lite.headers(), "Content-Type": content_type},
    )
    assert response.status_code == 415
    _assert_error_envelope(response)
    assert _count(lite.engine, voice_pipeline_events) == 0
    lite.app.state.enqueue = lambda *args: None
    retry = httpx.post(
        f"{lite.url}/api/v1/artifacts/art_x/retry",
        content=b'{"stage": "full"}',
        headers={**lite.headers(), "Content-Type": content_type},
    )
    assert 400 <= retry.status_code < 500 and retry.status_code != 404, retry.text[:200]
    _assert_error_envelope(retry)


@pytest.mark.parametrize(
    "body",
    [
        b'{"event_id": "\xff\xfe", "event_type": "artifact_received", "timestamp": 1}',
        b'[{"error_message": "overlong \xc0\xaf slash"}]',
        b'{"event_id": "raw\x00nul"}',
        b'{"timestamp": ' + b"9" * 5000 + b"}",
        b'{"event_id": "a", "event_type": "artifact_received", "timestamp": 1,}',
        b"\x00\x00\x00",
    ],
    ids=["bad-utf8", "overlong", "raw-nul", "5000-digits", "trailing-comma", "nul-body"],
)
def test_bodies_that_are_not_json_text_are_400(lite: LiveServer, body: bytes) -> None:
    response = httpx.post(f"{lite.url}/api/v1/events", content=body, headers=_json_headers(lite))
    assert response.status_code == 400, response.text[:200]
    _assert_error_envelope(response)
    assert _count(lite.engine, voice_pipeline_events) == 0


def test_poison_items_are_rejected_one_by_one_and_never_stored(server: LiveServer) -> None:
    """NUL, lone surrogates, NaN, Infinity, huge numbers: each item refused by index."""
    good = _event(error_message="all fine", organization_id="org_a")
    poison = [
        _event(error_message="nul \x00 byte"),
        _event(organization_id="org\x00a"),
        _event(event_id="evt\x00nul"),
        _event(metadata={"ai_model": "model\x00x"}),
        _event(error_message="lone \ud800 surrogate"),
        _event(coach_user_id="\udfff"),
        _event(timestamp=float("nan")),
        _event(timestamp=float("inf")),
        _event(duration_ms=float("-inf")),
        _event(duration_ms=float("nan")),
        _event(timestamp=10**30),
        _event(timestamp=-(10**30)),
        _event(duration_ms=10**400),
        _event(metadata={"claim_count": 2**70}),
        _event(metadata={"ai_cost": float("inf")}),
        _event(metadata={"confidence_score": float("nan")}),
        _event(metadata={"transcript_duration": 1e308}),
        _event(stage_started_at=float("nan")),
        _event(timestamp=True),
        _event(error_message=["not", "a", "string"]),
    ]
    body = json.dumps([good, *poison], allow_nan=True)  # NaN/Infinity: Python's json accepts them
    assert "NaN" in body and "Infinity" in body and "\\u0000" in body and "\\ud800" in body
    response = httpx.post(
        f"{server.url}/api/v1/events", content=body.encode(), headers=_json_headers(server)
    )
    assert response.status_code == 200, response.text[:500]
    result = _strict_json(response.text)
    assert result["accepted"] == 1 and result["duplicates"] == 0
    assert [r["index"] for r in result["rejected"]] == list(range(1, len(poison) + 1))
    for rejection in result["rejected"]:
        assert isinstance(rejection["error"], str) and "\n" not in rejection["error"]
        assert 0 < len(rejection["error"]) < 300
    # raw bodies: a literal the server parses into inf, a surrogate encoded in UTF-8
    # (json.loads decodes bytes with "surrogatepass"); all rejected is 422
    for raw in (
        b'{"event_id": "evt_literal", "event_type": "artifact_received", "timestamp": 1e400}',
        b'{"event_id": "evt_surrogate", "event_type": "artifact_received", "timestamp": '
        + str(now_ms()).encode()
        + b', "error_message": "surrogate \xed\xa0\x80 in UTF-8"}',
    ):
        all_bad = httpx.post(
            f"{server.url}/api/v1/events", content=raw, headers=_json_headers(server)
        )
        assert all_bad.status_code == 422, all_bad.text
        assert all_bad.json()["accepted"] == 0 and len(all_bad.json()["rejected"]) == 1
    # only the good one is stored, and the log reads back as strict JSON
    with server.engine.connect() as conn:
        stored = conn.execute(select(voice_pipeline_events.c.event_id)).scalars().all()
    assert stored == [good["event_id"]]
    listing = httpx.get(f"{server.url}/api/v1/events", headers=server.headers())
    assert [e["event_id"] for e in _strict_json(listing.text)["items"]] == [good["event_id"]]


# --- injection strings -------------------------------------------------------------------------


def test_injection_strings_in_every_filter_are_inert(server: LiveServer) -> None:
    """Every query parameter of every listing, from the OpenAPI description, gets each string."""
    _seed(server)
    events_before = _count(server.engine, voice_pipeline_events)
    artifacts_before = _count(server.engine, voice_note_artifacts)
    server.app.state.enqueue = lambda *args: None
    params = _get_query_params(_openapi(server))
    assert {"organization_id", "artifact_id", "event_type", "pipeline_stage", "cursor"} <= set(
        params["/api/v1/events"]
    )
    assert {"q", "status", "source_channel"} <= set(params["/api/v1/artifacts"])
    assert "kind" in params["/api/v1/alerts"] and "/api/v1/events.csv" in params
    seen: dict[int, int] = {}
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=10) as client:
        for path, names in params.items():
            for name in names:
                for value in HOSTILE:
                    response = client.get(path, params={name: value})
                    seen[response.status_code] = seen.get(response.status_code, 0) + 1
                    where = f"GET {path}?{name}={value!r}"
                    _no_5xx(response, where)
                    assert response.status_code in (200, 422), (where, response.text[:300])
                    if response.status_code == 422:
                        _assert_error_envelope(response)
                    elif path.endswith(".csv"):  # nothing stored matches a hostile value
                        assert response.text.strip().count("\n") == 0, where
                    elif "items" in response.json():
                        assert response.json()["items"] == [], where
                    elif "snapshots" in response.json():  # history of an unknown organization
                        assert response.json()["snapshots"] == [], where
                    else:  # realtime metrics scoped to an unknown organization
                        assert response.json()["artifacts_received"] == 0, where
        for value in HOSTILE:  # path parameters: unknown ids are 404, whatever they hold
            enc = quote(value, safe="")
            for method, path in (
                ("GET", f"/api/v1/artifacts/{enc}"),
                ("POST", f"/api/v1/artifacts/{enc}/retry"),
                ("POST", f"/api/v1/alerts/{enc}/acknowledge"),
            ):
                response = client.request(method, path, json={"stage": "full"})
                _no_5xx(response, (method, path))
                assert response.status_code == 404, (method, value, response.text[:200])
                _assert_error_envelope(response)
    assert seen.get(200, 0) > 100 and seen.get(422, 0) > 50, seen  # both paths were taken
    _assert_tables_intact(server.engine)
    assert _count(server.engine, voice_pipeline_events) == events_before
    assert _count(server.engine, voice_note_artifacts) == artifacts_before
    assert httpx.get(f"{server.url}/api/v1/health").json()["status"] == "ok"


TEXT_FIELDS = (
    "organization_id",
    "artifact_id",
    "voice_note_id",
    "coach_user_id",
    "previous_status",
    "new_status",
    "error_message",
    "error_code",
)


def test_injection_strings_in_event_fields_come_back_byte_for_byte(server: LiveServer) -> None:
    base = now_ms() - 60_000
    batch = []
    for i, value in enumerate(HOSTILE):
        event = _event(
            event_type="transcription_failed", timestamp=base + i, metadata={"ai_model": value}
        )
        event.update({field: value for field in TEXT_FIELDS})
        batch.append(event)
    response = httpx.post(f"{server.url}/api/v1/events", json=batch, headers=server.headers())
    assert response.status_code == 200 and response.json()["accepted"] == len(HOSTILE), (
        response.text[:500]
    )
    _assert_tables_intact(server.engine)
    assert _count(server.engine, voice_pipeline_events) == len(HOSTILE)
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=10) as client:
        for value, sent in zip(HOSTILE, batch, strict=True):
            for name in ("organization_id", "artifact_id"):
                found = client.get("/api/v1/events", params={name: value}).json()["items"]
                assert [e["event_id"] for e in found] == [sent["event_id"]], (name, value)
                item = found[0]
                for field in TEXT_FIELDS:
                    assert item[field] == value, (field, value, item[field])
                assert item["metadata"]["ai_model"] == value
            # the CSV export: the same text, a formula lead neutralised by a quote
            export = client.get("/api/v1/events.csv", params={"organization_id": value})
            assert export.status_code == 200
            rows = list(csv.DictReader(io.StringIO(export.text, newline="")))
            assert len(rows) == 1, (value, export.text[:300])
            expected = "'" + value if value[:1] in FORMULA_LEADS else value
            for field in (*TEXT_FIELDS, "ai_model"):
                assert rows[0][field] == expected, (field, value, rows[0][field])
        whole = client.get("/api/v1/events.csv")
    cells = [cell for row in csv.reader(io.StringIO(whole.text, newline="")) for cell in row]
    assert len(cells) > len(HOSTILE) * len(TEXT_FIELDS)
    leading = [c for c in cells if c[:1] in FORMULA_LEADS]
    assert leading == [], leading[:5]


def test_markup_comes_back_escaped_in_pages(lite: LiveServer) -> None:
    """Stored and reflected markup is escaped in every page that shows it."""
    clubs.upsert_organization(lite.engine, "org_x", "X")
    payload = MARKUP[0]
    batch = [
        _event(
            event_type="transcription_failed",
            organization_id=m,
            artifact_id=m,
            error_message=m,
            error_code=m,
        )
        for m in MARKUP
    ]
    assert httpx.post(f"{lite.url}/api/v1/events", json=batch, headers=lite.headers()).json()[
        "accepted"
    ] == len(MARKUP)
    submitted = httpx.post(
        f"{lite.url}/api/v1/artifacts",
        data={"organization_id": "org_x", "coach_user_id": payload, "text": payload},
        headers=lite.headers(),
    )
    assert submitted.status_code == 202, submitted.text
    artifact_id = submitted.json()["artifact_id"]
    html = {**lite.headers(), "Accept": "text/html"}
    pages = [
        ("/events", {}),
        ("/events", {"errors_only": "true"}),
        ("/artifacts", {}),
        (f"/artifacts/{artifact_id}", {}),
        (f"/artifacts/{artifact_id}", {"fragment": "row"}),
    ]
    for markup in MARKUP:
        pages += [
            ("/events", {"organization_id": markup, "artifact_id": markup}),
            ("/artifacts", {"q": markup[:100], "organization_id": markup}),
            ("/alerts", {"kind": markup[:48], "severity": markup[:16]}),
            ("/pipeline", {"stage": markup[:40]}),
            (f"/pipeline/{quote(markup, safe='')}", {}),
            (f"/artifacts/{quote(markup, safe='')}", {}),
            ("/metrics", {"range": markup[:8]}),
        ]
    shown = 0
    with httpx.Client(base_url=lite.url, headers=html, timeout=10) as client:
        for path, params in pages:
            response = client.get(path, params=params)
            assert response.status_code < 500, (path, params, response.text[:300])
            for markup in MARKUP:
                assert markup not in response.text, (path, params)
            shown += "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert shown >= 3  # the payload was really on the pages, escaped


# --- audio uploads -------------------------------------------------------------------------------


def _submit_audio(server: LiveServer, name: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/artifacts",
        data={"organization_id": "org_x", "coach_user_id": "coach_1", "source_channel": "app"},
        files={"audio": (name, data, "audio/wav")},
        headers=server.headers(server.ingest_token),
        timeout=60,
    )


def test_upload_file_names_never_choose_the_path(server: LiveServer, tmp_path: Path) -> None:
    from voicewatch.tasks import use_queue

    clubs.upsert_organization(server.engine, "org_x", "X")
    audio_dir = Path(server.settings.audio_dir).resolve()
    tag = uuid.uuid4().hex
    names = [
        f"../../../../tmp/pwned-{tag}.wav",
        f"../../../../../../../../../../tmp/pwned-{tag}.wav",
        f"/tmp/pwned-{tag}.wav",
        f"..\\..\\..\\pwned-{tag}.wav",
        f"....//....//pwned-{tag}.wav",
        f"..%2F..%2Fpwned-{tag}.wav",
        f"pwned-{tag}.php",
        f"../pwned-{tag}",
    ]
    data = _wav()
    stored: list[Path] = []
    for name in names:
        response = _submit_audio(server, name, data)
        assert response.status_code == 202, (name, response.text)
        row = repo.get_artifact(server.engine, response.json()["artifact_id"])
        assert row is not None and row["kind"] == "audio" and row["status"] == "received"
        path = Path(row["audio_path"]).resolve()
        assert path.parent == audio_dir, (name, path)
        assert re.fullmatch(r"[0-9a-f]{32}\.wav", path.name), path.name  # the server's name
        assert path.read_bytes() == data
        stored.append(path)
    assert sorted(audio_dir.iterdir()) == sorted(stored)
    assert list(Path("/tmp").glob(f"*pwned-{tag}*")) == []
    assert list(tmp_path.rglob(f"*pwned-{tag}*")) == []
    assert list(Path.cwd().glob(f"*pwned-{tag}*")) == []
    for parent in list(audio_dir.parents)[:6]:
        assert list(parent.glob(f"*pwned-{tag}*")) == [], parent
    # each note was queued for transcription on the real (SQLite) queue
    assert use_queue(server.settings.queue_url).pending_count() == len(names)


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


@pytest.mark.parametrize(
    "name, data, error",
    [
        ("note.wav", b"this is a text file, not audio\n" * 40, "not audio"),
        ("note.png.wav", PNG + b"\x00" * 64, "not audio"),
        ("note.wav", b"", "empty"),
        ("note.wav", b"RIFF\x24\x00\x00\x00AVI LIST" + b"\x00" * 64, "not audio"),
        ("note.mp3", b"PK\x03\x04" + b"\x00" * 64, "not audio"),
        ("note.wav", b"<?php system($_GET['c']); ?>", "not audio"),
        ("note.wav", b"#!/bin/sh\nrm -rf /\n", "not audio"),
    ],
    ids=["text", "png", "empty", "riff-avi", "zip", "php", "script"],
)
def test_uploads_that_are_not_audio_are_422(
    lite: LiveServer, name: str, data: bytes, error: str
) -> None:
    clubs.upsert_organization(lite.engine, "org_x", "X")
    response = _submit_audio(lite, name, data)
    assert response.status_code == 422, response.text
    _assert_error_envelope(response)
    assert error in response.json()["error"]
    audio_dir = Path(lite.settings.audio_dir)
    assert not audio_dir.exists() or list(audio_dir.iterdir()) == []
    assert _count(lite.engine, voice_note_artifacts) == 0


def test_an_upload_over_25_mb_is_413(lite: LiveServer) -> None:
    clubs.upsert_organization(lite.engine, "org_x", "X")
    data = _wav(frames=MAX_AUDIO_BYTES // 2)  # header + 25 MiB of frames
    assert len(data) > MAX_AUDIO_BYTES
    response = _submit_audio(lite, "big.wav", data)
    assert response.status_code == 413, response.text[:200]
    _assert_error_envelope(response)
    audio_dir = Path(lite.settings.audio_dir)
    assert not audio_dir.exists() or list(audio_dir.iterdir()) == []
    assert _count(lite.engine, voice_note_artifacts) == 0


def test_injection_strings_in_note_fields_are_stored_as_text(server: LiveServer) -> None:
    clubs.upsert_organization(server.engine, "org_x", "X")
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=10) as client:
        for value in HOSTILE:
            sent = client.post(
                "/api/v1/artifacts",
                data={"organization_id": "org_x", "coach_user_id": value, "text": value},
            )
            assert sent.status_code == 202, (value, sent.text)
            detail = client.get(f"/api/v1/artifacts/{sent.json()['artifact_id']}").json()
            assert detail["artifact"]["coach_user_id"] == value
            assert detail["artifact"]["text"] == value
            for field in ("organization_id", "source_channel"):
                refused = client.post(
                    "/api/v1/artifacts",
                    data={"organization_id": "org_x", "coach_user_id": "c1", "text": "hi"}
                    | {field: value},
                )
                assert refused.status_code == 422, (field, value, refused.text)
                _assert_error_envelope(refused)
    _assert_tables_intact(server.engine)
    assert _count(server.engine, voice_note_artifacts) == len(HOSTILE)


# --- NUL: refused everywhere, on every database ------------------------------------------------


def _nul_problems(
    client: httpx.Client, method: str, path: str, ok: tuple[int, ...], **kwargs: Any
) -> list[str]:
    sent = {k: v for k, v in kwargs.items() if k != "headers"}
    try:
        response = client.request(method, path, **kwargs)
        response.read()  # a CSV stream must complete
    except httpx.HTTPError as exc:
        return [f"{method} {path} {sent}: {type(exc).__name__}"]
    if response.status_code not in ok:
        return [f"{method} {path} {sent}: {response.status_code} {response.text[:120]}"]
    return []


def test_a_nul_in_a_filter_or_path_is_refused_not_a_500(server: LiveServer) -> None:
    server.app.state.enqueue = lambda *args: None
    params = _get_query_params(_openapi(server))
    problems: list[str] = []
    with httpx.Client(
        base_url=server.url, headers=server.headers(), timeout=10, limits=NO_KEEPALIVE
    ) as client:  # after a 500 the server drops the connection: a fresh one each time
        for value in NUL:
            for path, names in params.items():
                for name in names:
                    problems += _nul_problems(
                        client, "GET", path, (200, 400, 422), params={name: value}
                    )
            enc = quote(value, safe="")
            for method, path in (
                ("GET", f"/api/v1/artifacts/{enc}"),
                ("POST", f"/api/v1/artifacts/{enc}/retry"),
                ("GET", f"/artifacts/{enc}"),
                ("GET", f"/pipeline/{enc}"),
            ):
                problems += _nul_problems(
                    client, method, path, (400, 404, 422), json={"stage": "full"}
                )
            for path, name in (
                ("/events", "organization_id"),
                ("/artifacts", "q"),
                ("/artifacts", "organization_id"),
            ):
                problems += _nul_problems(
                    client, "GET", path, (200, 400, 422), params={name: value}
                )
    if problems:
        fail_after_server_logs("\n".join(problems))


def test_a_nul_in_a_form_field_is_refused_not_a_500(server: LiveServer) -> None:
    clubs.upsert_organization(server.engine, "org_x", "X")
    note = {"organization_id": "org_x", "coach_user_id": "c1", "text": "hi"}
    problems: list[str] = []
    with httpx.Client(base_url=server.url, timeout=10, limits=NO_KEEPALIVE) as client:
        for field in ("organization_id", "coach_user_id", "text"):
            problems += _nul_problems(
                client,
                "POST",
                "/api/v1/artifacts",
                (202, 400, 422),
                data={**note, field: "a\x00b"},
                headers=server.headers(),
            )
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        form = {"email": "staff\x00@x.test", "password": "whatever!", "csrf_token": token[1]}
        problems += _nul_problems(client, "POST", "/login", (400, 401, 422), data=form)
    if problems:
        fail_after_server_logs("\n".join(problems))
