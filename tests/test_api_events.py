"""POST/GET /api/v1/events over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from collections import Counter

import httpx
from sqlalchemy import func, select

from voicewatch.clock import minute_start, now_ms
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t


def _event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "artifact_received",
        "timestamp": now_ms(),
        "artifact_id": "art_1",
        "organization_id": "org_a",
    }
    base.update(fields)
    return base


def test_ten_thousand_events_with_duplicates_and_invalid_land_once(live_server) -> None:
    rng = random.Random(42)
    types = ["artifact_received", "transcription_started", "transcription_completed"]
    start = now_ms() - 3_600_000
    originals = [
        _event(
            event_type=rng.choice(types),
            timestamp=start + i * 300,
            organization_id=rng.choice(["org_a", "org_b"]),
            artifact_id=f"art_{i % 700}",
            duration_ms=rng.randint(1, 5000),
        )
        for i in range(9_400)
    ]
    duplicates = [dict(e) for e in rng.sample(originals, 500)]
    invalid = [_event(event_type="no_such_type") for _ in range(100)]
    stream = originals + duplicates + invalid
    rng.shuffle(stream)
    bad_ids = {e["event_id"] for e in invalid}
    accepted = dups = 0
    rejected_ok = 0
    with httpx.Client(
        base_url=live_server.url, headers=live_server.headers(live_server.ingest_token)
    ) as client:
        for i in range(0, len(stream), 500):
            batch = stream[i : i + 500]
            response = client.post("/api/v1/events", json=batch)
            assert response.status_code == 200, response.text
            body = response.json()
            accepted += body["accepted"]
            dups += body["duplicates"]
            for item in body["rejected"]:
                assert batch[item["index"]]["event_id"] in bad_ids
                assert "event_type" in item["error"]
                rejected_ok += 1
    assert accepted == 9_400
    assert dups == 500
    assert rejected_ok == 100
    with live_server.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events_t)).scalar_one() == 9_400
        stored = conn.execute(
            select(
                counters_t.c.scope,
                counters_t.c.bucket_start,
                counters_t.c.counter_type,
                counters_t.c.count,
            )
        ).fetchall()
    expected: Counter[tuple[str, int, str]] = Counter()
    for e in originals:
        bucket = minute_start(int(e["timestamp"]))
        expected[("", bucket, str(e["event_type"]))] += 1
        expected[(str(e["organization_id"]), bucket, str(e["event_type"]))] += 1
    actual: Counter[tuple[str, int, str]] = Counter()
    for scope, bucket, counter_type, count in stored:
        if counter_type in expected_types(types):
            actual[(scope, bucket, counter_type)] += count
    assert actual == expected


def expected_types(types: list[str]) -> set[str]:
    return set(types)


def test_ingest_token_may_send_but_not_read(live_server) -> None:
    ingest = live_server.headers(live_server.ingest_token)
    assert (
        httpx.post(f"{live_server.url}/api/v1/events", json=_event(), headers=ingest).status_code
        == 200
    )
    assert httpx.get(f"{live_server.url}/api/v1/events", headers=ingest).status_code == 403
    assert (
        httpx.get(f"{live_server.url}/api/v1/metrics/realtime", headers=ingest).status_code == 403
    )


def test_anonymous_and_bad_tokens_get_401(live_server) -> None:
    for headers in ({}, {"Authorization": "Bearer vw_nope"}, {"Authorization": "Basic abc"}):
        response = httpx.post(f"{live_server.url}/api/v1/events", json=_event(), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]
        assert httpx.get(f"{live_server.url}/api/v1/events", headers=headers).status_code == 401


def test_all_rejected_is_422_with_indexes(live_server) -> None:
    response = httpx.post(
        f"{live_server.url}/api/v1/events",
        json=[_event(timestamp="yesterday"), _event(duration_ms=-5)],
        headers=live_server.headers(),
    )
    assert response.status_code == 422
    assert [r["index"] for r in response.json()["rejected"]] == [0, 1]


def test_oversized_and_malformed_bodies(live_server) -> None:
    url = f"{live_server.url}/api/v1/events"
    headers = live_server.headers()
    too_many = [_event() for _ in range(1001)]
    assert httpx.post(url, json=too_many, headers=headers).status_code == 413
    huge = b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    response = httpx.post(
        url, content=huge, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    for body in (b"{not json", b"", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe"):
        response = httpx.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, body[:20]
        assert "Traceback" not in response.text
    response = httpx.post(url, content=b"a=b", headers={**headers, "Content-Type": "text/plain"})
    assert response.status_code == 415
    for payload in (b"42", b'"text"', b"null", b"[]", b"true"):
        response = httpx.post(
            url, content=payload, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, payload
    # the server is still healthy and nothing landed
    assert httpx.get(f"{live_server.url}/api/v1/health").json()["status"] == "ok"
    assert httpx.get(url, headers=headers).json()["items"] == []


def test_get_events_filters_and_cursor(live_server) -> None:
    base = now_ms() - 10_000
    batch = [
        _event(
            event_type="transcription_failed",
            timestamp=base + i,
            error_message="<script>x</script>",
        )
        if i % 3 == 0
        else _event(event_type="transcription_started", timestamp=base + i)
        for i in range(30)
    ]
    headers = live_server.headers()
    assert (
        httpx.post(f"{live_server.url}/api/v1/events", json=batch, headers=headers).status_code
        == 200
    )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        body = httpx.get(f"{live_server.url}/api/v1/events", params=params, headers=headers).json()
        seen += [item["event_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 30 and len(set(seen)) == 30
    errors = httpx.get(
        f"{live_server.url}/api/v1/events", params={"errors_only": "true"}, headers=headers
    ).json()["items"]
    assert len(errors) == 10
    assert errors[0]["error_message"] == "<script>x</script>"  # data, returned as JSON text
    typed = httpx.get(
        f"{live_server.url}/api/v1/events",
        params=[("event_type", "transcription_started")],
        headers=headers,
    ).json()["items"]
    assert len(typed) == 20
    bad = httpx.get(
        f"{live_server.url}/api/v1/events", params={"event_type": "x' OR 1=1 --"}, headers=headers
    )
    assert bad.status_code == 422
    assert (
        httpx.get(
            f"{live_server.url}/api/v1/events", params={"cursor": "garbage"}, headers=headers
        ).status_code
        == 422
    )
    assert (
        httpx.get(
            f"{live_server.url}/api/v1/events", params={"limit": 501}, headers=headers
        ).status_code
        == 422
    )


def test_csv_export_is_filtered_and_formula_safe(live_server) -> None:
    headers = live_server.headers()
    batch = [_event(event_type="transcription_failed", error_message="=HYPERLINK(1)"), _event()]
    httpx.post(f"{live_server.url}/api/v1/events", json=batch, headers=headers)
    response = httpx.get(
        f"{live_server.url}/api/v1/events.csv", params={"errors_only": "true"}, headers=headers
    )
    assert response.status_code == 200
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("event_id,event_type")
    assert len(lines) == 2
    assert "'=HYPERLINK(1)" in lines[1]


def test_realtime_metrics_come_from_counters(live_server) -> None:
    now = now_ms()
    batch = [
        _event(event_type="artifact_received", artifact_id="a1", timestamp=now - 5000),
        _event(
            event_type="artifact_completed",
            artifact_id="a1",
            timestamp=now - 1000,
            metadata={"ai_cost": 0.25},
        ),
        _event(
            event_type="artifact_received",
            artifact_id="a2",
            timestamp=now - 4000,
            organization_id="org_b",
        ),
        _event(
            event_type="artifact_failed",
            artifact_id="a2",
            timestamp=now - 2000,
            organization_id="org_b",
        ),
        _event(event_type="artifact_received", artifact_id="a3", timestamp=now - 3000),
        _event(event_type="artifact_received", artifact_id="old", timestamp=now - 2 * 3_600_000),
    ]
    headers = live_server.headers()
    httpx.post(f"{live_server.url}/api/v1/events", json=batch, headers=headers)
    body = httpx.get(f"{live_server.url}/api/v1/metrics/realtime", headers=headers).json()
    assert body["artifacts_received"] == 3
    assert body["artifacts_completed"] == 1
    assert body["artifacts_failed"] == 1
    assert body["active_artifacts"] == 2  # a3 and "old"
    assert abs(body["failure_rate"] - 1 / 3) < 1e-9
    assert body["avg_end_to_end_latency_ms"] == 4000
    assert body["total_ai_cost"] == 0.25
    assert body["circuit_breaker_state"] == "closed"
    scoped = httpx.get(
        f"{live_server.url}/api/v1/metrics/realtime",
        params={"organization_id": "org_b"},
        headers=headers,
    ).json()
    assert (scoped["artifacts_received"], scoped["artifacts_failed"], scoped["failure_rate"]) == (
        1,
        1,
        1.0,
    )


def test_health_is_public(live_server) -> None:
    response = httpx.get(f"{live_server.url}/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("transcriber")  # which recogniser runs (tests/test_whisper.py)
    assert body == {
        "status": "ok",
        "database": "ok",
        "queue": "ok",
        "otlp_unmapped_spans_60m": 0,
    }


def test_openapi_and_docs_are_for_staff_only(live_server) -> None:
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(f"{live_server.url}{path}").status_code == 401
        ingest = live_server.headers(live_server.ingest_token)
        assert httpx.get(f"{live_server.url}{path}", headers=ingest).status_code == 403
        assert (
            httpx.get(f"{live_server.url}{path}", headers=live_server.headers()).status_code == 200
        )
    spec = httpx.get(f"{live_server.url}/openapi.json", headers=live_server.headers()).json()
    assert "/api/v1/events" in spec["paths"]


def test_metric_history_stages_and_orgs(live_server) -> None:
    from voicewatch import metrics
    from voicewatch.clock import HOUR_MS

    now = now_ms()
    last_hour = now - now % HOUR_MS - HOUR_MS
    batch = [
        _event(event_type="artifact_received", artifact_id="h1", timestamp=last_hour + 1000),
        _event(event_type="artifact_completed", artifact_id="h1", timestamp=last_hour + 5000),
    ]
    httpx.post(f"{live_server.url}/api/v1/events", json=batch, headers=live_server.headers())
    metrics.aggregate_hour(live_server.engine, last_hour)
    headers = live_server.headers()
    history = httpx.get(
        f"{live_server.url}/api/v1/metrics/history", params={"range": "6h"}, headers=headers
    )
    assert history.status_code == 200 and history.json()["period_type"] == "hourly"
    hours = {s["period_start"]: s for s in history.json()["snapshots"]}
    assert (
        hours[last_hour]["artifacts_received"] == 1 and hours[last_hour]["artifacts_completed"] == 1
    )
    daily = httpx.get(
        f"{live_server.url}/api/v1/metrics/history", params={"range": "7d"}, headers=headers
    )
    assert daily.json()["period_type"] == "daily"
    bad = httpx.get(
        f"{live_server.url}/api/v1/metrics/history", params={"range": "2y"}, headers=headers
    )
    assert bad.status_code == 422
    stages = httpx.get(f"{live_server.url}/api/v1/metrics/stages", headers=headers).json()["stages"]
    assert {s["stage"] for s in stages} >= {"transcription", "claims_extraction"}
    assert all(s["health"] in ("green", "yellow", "red") for s in stages)
    orgs = httpx.get(
        f"{live_server.url}/api/v1/metrics/orgs", params={"range": "24h"}, headers=headers
    ).json()
    assert [o["organization_id"] for o in orgs["organizations"]] == ["org_a"]
    ingest = live_server.headers(live_server.ingest_token)
    assert httpx.get(f"{live_server.url}/api/v1/metrics/orgs", headers=ingest).status_code == 403
