"""The event log (events.py) on real SQLite and real PostgreSQL.

Every expected figure is computed here, from the input events, without
calling the code under test: counters, order, filters, artifact states.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text

from factories import BASE_MS, make_event, make_events, make_traffic
from recount import assert_counters_equal_recount, stored_event_ids
from voicewatch import model
from voicewatch.clock import hour_window
from voicewatch.event_queries import (
    CursorError,
    EventFilter,
    artifact_timeline,
    artifacts_in_flight,
    encode_cursor,
    failed_artifacts,
    iter_events,
    recent_events,
)
from voicewatch.events import AI_COST, E2E_LATENCY, STAGE_LATENCY, log_events
from voicewatch.histogram import index_of
from voicewatch.metrics import queue_depth as count_in_flight
from voicewatch.store import make_engine
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t

#: Their metadata.ai_cost is the organization's running total, not a cost incurred.
BUDGET_TYPES = frozenset({"budget_threshold_reached", "budget_exceeded"})

CounterKey = tuple[str, int, str, str]  # scope, bucket_start, counter_type, pipeline_stage
Counters = dict[CounterKey, tuple[int, float]]


# --- independent expectations ---------------------------------------------------------


def stage_of(event: dict[str, Any]) -> str:
    """The stage an event is stored under: its own, else its type's, else ""."""
    if event.get("pipeline_stage"):
        return str(event["pipeline_stage"])
    default = model.EVENT_TYPES_BY_NAME[event["event_type"]].stage
    return default.value if default else ""


def expected_counters(events: Iterable[dict[str, Any]]) -> Counters:
    """Minute-bucket counters of ``events`` (unique, valid), platform-wide and per organization."""
    events = list(events)
    received: dict[str, int] = {}
    for e in events:
        if e["event_type"] == "artifact_received":
            received[e["artifact_id"]] = min(
                e["timestamp"], received.get(e["artifact_id"], 1 << 62)
            )
    cells: dict[CounterKey, list[float]] = defaultdict(lambda: [0, 0.0])

    def add(key: CounterKey, total: float) -> None:
        cells[key][0] += 1
        cells[key][1] += total

    for e in events:
        bucket = e["timestamp"] // 60_000 * 60_000
        scopes = [""] + ([e["organization_id"]] if e.get("organization_id") else [])
        cost = (e.get("metadata") or {}).get("ai_cost")
        if e["event_type"] in BUDGET_TYPES:
            cost = None  # a running total, not a cost incurred
        for scope in scopes:
            add((scope, bucket, e["event_type"], stage_of(e)), e.get("duration_ms") or 0)
            if cost is not None:
                add((scope, bucket, AI_COST, ""), cost)
            if e["event_type"] == "artifact_completed" and e["artifact_id"] in received:
                add((scope, bucket, E2E_LATENCY, ""), e["timestamp"] - received[e["artifact_id"]])
        completes = COMPLETES.get(e["event_type"])
        if completes and e.get("duration_ms") is not None:
            cell = f"{STAGE_LATENCY}{index_of(e['duration_ms'])}"
            add(("", bucket, cell, completes), e["duration_ms"])
    return {k: (int(v[0]), float(v[1])) for k, v in cells.items()}


#: Stage completion event type -> the processing stage it completes.
COMPLETES = {t: s.stage.value for s in model.PROCESSING_STAGES for t in s.completed}


def stored_counters(engine: Engine) -> Counters:
    with engine.connect() as conn:
        rows = conn.execute(select(counters_t)).fetchall()
    return {
        (r.scope, r.bucket_start, r.counter_type, r.pipeline_stage): (r.count, r.total)
        for r in rows
    }


def assert_counters_equal(actual: Counters, expected: Counters) -> None:
    assert set(actual) == set(expected), (
        f"missing {sorted(set(expected) - set(actual))[:5]}, "
        f"extra {sorted(set(actual) - set(expected))[:5]}"
    )
    for key, (count, total) in expected.items():
        assert actual[key][0] == count, key
        assert actual[key][1] == pytest.approx(total, rel=1e-9, abs=1e-9), key


def count_rows(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(events_t.c.event_id))]


def batches(events: list[dict[str, Any]], rng: random.Random) -> Iterator[list[dict[str, Any]]]:
    """Split ``events`` into consecutive batches of random sizes (1..120)."""
    i = 0
    while i < len(events):
        size = rng.randint(1, 120)
        yield events[i : i + size]
        i += size


# --- log_events: landing, duplicates, invalid items ---------------------------------------


def test_a_valid_batch_lands_field_for_field(engine: Engine) -> None:
    events = make_events("art_1", organization_id="org_a", coach_user_id="coach_1", rng=1)
    result = log_events(engine, events, received_at=BASE_MS + 99_999)
    assert result.accepted == len(events)
    assert result.duplicates == 0
    assert result.rejected == []
    assert sorted(result.accepted_ids) == sorted(e["event_id"] for e in events)
    assert count_rows(engine, events_t) == len(events)
    stored = {e["event_id"]: e for e in artifact_timeline(engine, "art_1")}
    for sent in events:
        got = stored[sent["event_id"]]
        assert got["received_at"] == BASE_MS + 99_999
        assert got["pipeline_stage"] == (stage_of(sent) or None)
        assert got["metadata"] == sent.get("metadata", {})
        for key, value in sent.items():
            if key not in ("metadata", "pipeline_stage"):
                assert got[key] == value, key
        for key in model.EVENT_FIELDS:
            if key not in sent and key not in ("metadata", "pipeline_stage"):
                assert got[key] is None, key


def test_as_dict_reports_counts_and_rejections(engine: Engine) -> None:
    event = make_event("draft_rejected")
    result = log_events(engine, [{"event_type": "x"}, event, 3, event])
    assert result.as_dict() == {
        "accepted": 1,
        "duplicates": 1,
        "rejected": [
            {"index": 0, "error": "event_id is required"},
            {"index": 2, "error": "an event must be a JSON object"},
        ],
    }
    assert result.accepted_ids == [event["event_id"]]


def test_duplicates_in_a_batch_and_across_batches_count_once(engine: Engine) -> None:
    first = make_events("art_d", organization_id="org_a", rng=2)
    again = [dict(e) for e in first[:3]]
    result = log_events(engine, first + again)
    assert (result.accepted, result.duplicates) == (len(first), 3)
    assert len(result.accepted_ids) == len(first)

    second = make_events("art_e", organization_id="org_b", start_ms=BASE_MS + 61_000, rng=3)
    replay = first[2:7] + second + first[:2]
    result = log_events(engine, replay)
    assert (result.accepted, result.duplicates) == (len(second), 7)
    assert set(result.accepted_ids) == {e["event_id"] for e in second}

    # a whole batch replayed changes nothing at all
    before = stored_counters(engine)
    result = log_events(engine, first + second)
    assert (result.accepted, result.duplicates) == (0, len(first) + len(second))
    assert stored_counters(engine) == before

    stored = stored_ids(engine)
    assert len(stored) == len(set(stored)) == len(first) + len(second)
    assert_counters_equal(stored_counters(engine), expected_counters(first + second))


def test_a_duplicate_id_with_other_content_is_ignored_and_the_first_wins(engine: Engine) -> None:
    original = make_event("transcription_started", BASE_MS, artifact_id="a1", organization_id="o")
    impostor = dict(original, event_type="artifact_failed", organization_id="other", duration_ms=9)
    result = log_events(engine, [original, impostor])
    assert (result.accepted, result.duplicates) == (1, 1)
    result = log_events(engine, [dict(impostor, timestamp=BASE_MS + 3_600_000)])
    assert (result.accepted, result.duplicates) == (0, 1)
    (stored,) = recent_events(engine)[0]
    assert stored["event_type"] == "transcription_started"
    assert stored["organization_id"] == "o"
    assert_counters_equal(stored_counters(engine), expected_counters([original]))


def test_invalid_items_are_reported_by_index_and_the_valid_ones_land(engine: Engine) -> None:
    valid = make_events("art_v", organization_id="org_a", rng=4)
    batch: list[Any] = list(valid)
    bad = {
        0: make_event("no_such_type"),
        4: make_event("transcription_completed", duration_ms=-1),
        7: make_event("artifact_received", timestamp=BASE_MS // 1000),
        9: {**make_event("artifact_received"), "colour": "red"},
        12: "not an event",
    }
    for index in sorted(bad):
        batch.insert(index, bad[index])
    batch.append(make_event("claims_extracted", metadata={"confidence_score": 3}))
    bad[len(batch) - 1] = batch[-1]

    result = log_events(engine, batch)
    assert [r.index for r in result.rejected] == sorted(bad)
    messages = {r.index: r.error for r in result.rejected}
    assert "event_type" in messages[0]
    assert "duration_ms" in messages[4]
    assert "timestamp" in messages[7]
    assert "colour" in messages[9]
    assert "object" in messages[12]
    assert "confidence_score" in messages[len(batch) - 1]
    assert (result.accepted, result.duplicates) == (len(valid), 0)
    assert sorted(stored_ids(engine)) == sorted(e["event_id"] for e in valid)
    assert_counters_equal(stored_counters(engine), expected_counters(valid))


def test_a_batch_of_only_invalid_items_stores_nothing(engine: Engine) -> None:
    result = log_events(engine, [make_event("nope"), {}, None])
    assert [r.index for r in result.rejected] == [0, 1, 2]
    assert result.accepted == result.duplicates == 0
    assert count_rows(engine, events_t) == 0
    assert count_rows(engine, counters_t) == 0
    assert log_events(engine, []).as_dict() == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_an_unencodable_string_is_rejected_by_index_and_does_not_spoil_the_batch(
    engine: Engine,
) -> None:
    # BUG: a lone surrogate (json.loads('"\\ud800"')) passes validation; the
    # driver then raises UnicodeEncodeError and the whole batch is lost.
    good = make_event("artifact_received", artifact_id="art_ok", organization_id="org_a")
    bad = make_event("artifact_received", artifact_id=json.loads('"art_\\ud800"'))
    result = log_events(engine, [good, bad])
    assert [r.index for r in result.rejected] == [1]
    assert result.accepted == 1
    assert stored_ids(engine) == [good["event_id"]]


def test_huge_ai_costs_cannot_poison_a_counter_bucket(engine: Engine) -> None:
    # BUG: ai_cost has no upper bound. On PostgreSQL two costs of 1e308 in one
    # minute overflow the counter upsert ("value out of range: overflow") and
    # every later batch with a cost in that minute fails whole; on SQLite the
    # total silently becomes inf.
    huge = {"ai_cost": 1e308}
    log_events(engine, [make_event("claims_extracted", BASE_MS, metadata=huge)])
    innocent = make_event("claims_extracted", BASE_MS + 1, metadata={"ai_cost": 0.01})
    result = log_events(
        engine, [make_event("claims_extracted", BASE_MS + 2, metadata=huge), innocent]
    )
    assert innocent["event_id"] in result.accepted_ids
    for (_, _, counter, _), (_, total) in stored_counters(engine).items():
        assert math.isfinite(total), counter


# --- counters ----------------------------------------------------------------------------


def test_counters_equal_an_independent_count_of_realistic_traffic(engine: Engine) -> None:
    rng = random.Random(5)
    # 120 artifacts over 20 minutes, three organizations, a quarter failing
    events = make_traffic(120, spread_ms=20 * 60_000, failure_rate=0.25, rng=rng)
    events.append(make_event("circuit_breaker_opened", BASE_MS + 5))  # no org, no stage
    events.append(make_event("rate_limit_hit", BASE_MS + 6, organization_id="org_hrc"))
    events.sort(key=lambda e: e["timestamp"])
    total = 0
    for batch in batches(events, rng):
        total += log_events(engine, batch).accepted
    assert total == len(events)
    expected = expected_counters(events)
    # the expectation covers what the issue asks: both scopes, many buckets,
    # every lifecycle type and stage, e2e latency and costs
    assert {k[0] for k in expected} == {"", "org_clg", "org_rvfc", "org_hrc"}
    assert len({k[1] for k in expected}) >= 20
    assert {E2E_LATENCY, AI_COST, "artifact_failed", "entity_needs_disambiguation"} <= {
        k[2] for k in expected
    }
    assert_counters_equal(stored_counters(engine), expected)


def test_end_to_end_latency_is_completed_minus_received_across_batches(engine: Engine) -> None:
    received = make_event(
        "artifact_received", BASE_MS + 59_990, artifact_id="a", organization_id="o"
    )
    middle = make_event(
        "transcription_started", BASE_MS + 60_500, artifact_id="a", organization_id="o"
    )
    done = make_event("artifact_completed", BASE_MS + 187_345, artifact_id="a", organization_id="o")
    for event in (received, middle, done):
        log_events(engine, [event])
    bucket = BASE_MS + 180_000
    counters = stored_counters(engine)
    assert counters[("", bucket, E2E_LATENCY, "")] == (1, 187_345.0 - 59_990)
    assert counters[("o", bucket, E2E_LATENCY, "")] == (1, 187_345.0 - 59_990)
    assert sum(1 for k in counters if k[2] == E2E_LATENCY) == 2


def test_a_batch_in_any_order_gives_the_same_counters(engine: Engine) -> None:
    events = make_traffic(30, spread_ms=5 * 60_000, failure_rate=0.2, rng=6)
    shuffled = list(events)
    random.Random(6).shuffle(shuffled)
    for i in range(0, len(shuffled), 1000):
        log_events(engine, shuffled[i : i + 1000])
    assert_counters_equal(stored_counters(engine), expected_counters(events))


def test_ai_cost_counter_sums_costs_of_cost_bearing_events(engine: Engine) -> None:
    events = [
        make_event(
            "transcription_completed", BASE_MS + 1, organization_id="o1", metadata={"ai_cost": 0.25}
        ),
        make_event(
            "claims_extracted", BASE_MS + 2, organization_id="o2", metadata={"ai_cost": 0.5}
        ),
        make_event("drafts_generated", BASE_MS + 3, organization_id="o1", metadata={"ai_cost": 0}),
        make_event(
            "drafts_generated", BASE_MS + 4, organization_id="o1", metadata={"draft_count": 2}
        ),
        make_event("claims_extracted", BASE_MS + 60_000, metadata={"ai_cost": 1.0}),
    ]
    log_events(engine, events)
    counters = stored_counters(engine)
    assert counters[("", BASE_MS, AI_COST, "")] == (3, 0.75)
    assert counters[("o1", BASE_MS, AI_COST, "")] == (2, 0.25)
    assert counters[("o2", BASE_MS, AI_COST, "")] == (1, 0.5)
    assert counters[("", BASE_MS + 60_000, AI_COST, "")] == (1, 1.0)
    assert ("o1", BASE_MS + 60_000, AI_COST, "") not in counters
    assert_counters_equal(counters, expected_counters(events))


# --- atomicity ---------------------------------------------------------------------------


def _state_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(states_t)))


def test_a_failure_midway_leaves_nothing_behind_sqlite_table_renamed(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        first = make_events("art_1", organization_id="org_a", rng=7)
        log_events(engine, first)
        before = (stored_counters(engine), _state_rows(engine))
        second = make_events("art_2", organization_id="org_a", rng=8)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE voice_pipeline_counters RENAME TO counters_away"))
        with pytest.raises(Exception, match="voice_pipeline_counters"):
            log_events(engine, second + first[:2])
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE counters_away RENAME TO voice_pipeline_counters"))
        assert sorted(stored_ids(engine)) == sorted(e["event_id"] for e in first)
        assert (stored_counters(engine), _state_rows(engine)) == before
        # nothing was half-recorded: the same batch now lands in full
        result = log_events(engine, second)
        assert (result.accepted, result.duplicates) == (len(second), 0)
        assert_counters_equal(stored_counters(engine), expected_counters(first + second))
    finally:
        engine.dispose()


@pytest.fixture
def failing_counter(engine: Engine) -> Iterator[str]:
    """A trigger that aborts any insert of an ``e2e_latency`` counter row.

    The counters of a batch are written in key order, so rows before
    ``e2e_latency`` (the ``artifact_*`` types, ``ai_cost``, ...) are already in
    when it fires: the transaction really fails midway.
    """
    if engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER vw_test_boom BEFORE INSERT ON voice_pipeline_counters "
            "WHEN NEW.counter_type = 'e2e_latency' BEGIN SELECT RAISE(ABORT, 'boom'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS vw_test_boom"]
    else:
        create = [
            "CREATE FUNCTION vw_test_boom() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'boom'; END $$",
            "CREATE TRIGGER vw_test_boom BEFORE INSERT ON voice_pipeline_counters "
            "FOR EACH ROW WHEN (NEW.counter_type = 'e2e_latency') EXECUTE FUNCTION vw_test_boom()",
        ]
        drop = [
            "DROP TRIGGER IF EXISTS vw_test_boom ON voice_pipeline_counters",
            "DROP FUNCTION IF EXISTS vw_test_boom()",
        ]
    with engine.begin() as conn:
        for sql in drop + create:
            conn.execute(text(sql))
    try:
        yield "boom"
    finally:
        with engine.begin() as conn:
            for sql in drop:
                conn.execute(text(sql))


def test_a_failure_midway_leaves_nothing_behind(engine: Engine, failing_counter: str) -> None:
    # the first batch has no completion, so no e2e counter: it lands
    first = make_events("art_1", organization_id="org_a", rng=9)[:-1]
    assert log_events(engine, first).accepted == len(first)
    before = (stored_counters(engine), _state_rows(engine))
    # the second shares minute buckets and the artifact with the first
    second = [make_events("art_1", organization_id="org_a", rng=9)[-1]]
    second += make_events("art_2", organization_id="org_a", rng=10)
    with pytest.raises(Exception, match=failing_counter):
        log_events(engine, second)
    assert sorted(stored_ids(engine)) == sorted(e["event_id"] for e in first)
    assert (stored_counters(engine), _state_rows(engine)) == before
    assert count_in_flight(engine) == 1


# --- concurrency -------------------------------------------------------------------------

_WRITER = """
import json, os, sys, time
from voicewatch.events import log_events
from voicewatch.store import make_engine

url, events_path, ready_path, go_path, mode = sys.argv[1:]
with open(events_path) as f:
    events = json.load(f)
engine = make_engine(url)
with engine.connect():
    pass  # connected before the start line
if mode == "whole":
    plan = [events]
else:  # the same ids in two batches, each artifact whole in one, each shuffled
    import random
    rng = random.Random(1)
    artifacts = sorted({e["artifact_id"] for e in events})
    second = set(artifacts[len(artifacts) // 2 :])
    plan = [
        [e for e in events if e["artifact_id"] in second],
        [e for e in events if e["artifact_id"] not in second],
    ]
    for part in plan:
        rng.shuffle(part)
open(ready_path, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(go_path):
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.0005)
accepted = duplicates = 0
began = time.time()
for part in plan:
    result = log_events(engine, part)
    accepted += result.accepted
    duplicates += result.duplicates
ended = time.time()
print(json.dumps({"accepted": accepted, "duplicates": duplicates, "span": [began, ended]}))
"""


def test_two_processes_logging_the_same_1000_ids_at_once_store_each_once(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    events = make_traffic(100, spread_ms=3 * 60_000, failure_rate=0.2, rng=11)[:1000]
    assert len(events) == 1000
    events_path = tmp_path / "events.json"
    events_path.write_text(json.dumps(events))
    go = tmp_path / "go"
    procs = []
    for n, mode in enumerate(("whole", "halves")):
        ready = tmp_path / f"ready{n}"
        args = [str(events_path), str(ready), str(go), mode]
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, db_url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, ready))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for _, ready in procs):
        assert all(p.poll() is None for p, _ in procs), [p.communicate() for p, _ in procs]
        assert time.monotonic() < deadline, "the writers did not get ready"
        time.sleep(0.01)
    go.touch()
    results = []
    for proc, _ in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    (began0, ended0), (began1, ended1) = (r["span"] for r in results)
    assert max(began0, began1) < min(ended0, ended1), "the two writers did not overlap"
    assert sum(r["accepted"] for r in results) == 1000
    assert sum(r["duplicates"] for r in results) == 1000
    stored = stored_ids(engine)
    assert len(stored) == 1000
    assert set(stored) == {e["event_id"] for e in events}
    assert_counters_equal(stored_counters(engine), expected_counters(events))
    assert count_rows(engine, states_t) == len({e["artifact_id"] for e in events})


# --- UTC, whatever the machine's TZ ---------------------------------------------------------

LAST_MS_OF_10H = BASE_MS + 10 * 3_600_000 + 3_599_999  # 2026-01-01T10:59:59.999Z
FIRST_MS_OF_11H = BASE_MS + 11 * 3_600_000  # 2026-01-01T11:00:00.000Z

_TZ_WRITER = """
import json, os, sys, time
from voicewatch.clock import hour_window
from voicewatch.events import log_events
from voicewatch.store import make_engine

url, batches = sys.argv[1], json.loads(sys.argv[2])
engine = make_engine(url)
figures = []
# started with TZ=America/St_Johns; then switched to Asia/Kathmandu in-process
for zone, events in zip((None, "Asia/Kathmandu"), batches):
    if zone:
        os.environ["TZ"] = zone
        time.tzset()
    log_events(engine, events)
    figures.append({
        "offset": time.localtime(events[0]["timestamp"] // 1000).tm_gmtoff,
        "windows": [hour_window(e["timestamp"]) for e in events],
    })
print(json.dumps(figures))
"""


def _boundary_events() -> list[dict[str, Any]]:
    return [
        make_event("transcription_completed", LAST_MS_OF_10H, organization_id="o", duration_ms=5),
        make_event("transcription_completed", FIRST_MS_OF_11H, organization_id="o", duration_ms=7),
    ]


def _assert_boundary_buckets(engine: Engine, times: int = 1) -> None:
    counters = stored_counters(engine)
    stage = "transcription"
    for scope in ("", "o"):
        before = (scope, FIRST_MS_OF_11H - 60_000, "transcription_completed", stage)
        after = (scope, FIRST_MS_OF_11H, "transcription_completed", stage)
        assert counters[before] == (times, 5 * times)
        assert counters[after] == (times, 7 * times)
    # and each minute's platform-wide latency histogram holds its one completion
    latency = {k: v for k, v in counters.items() if k[2].startswith(STAGE_LATENCY)}
    assert sorted((k[1], v) for k, v in latency.items()) == [
        (FIRST_MS_OF_11H - 60_000, (times, 5 * times)),
        (FIRST_MS_OF_11H, (times, 7 * times)),
    ]
    assert len(counters) == 6


def test_hour_boundary_buckets_in_processes_with_non_utc_tzs(db_url: str, engine: Engine) -> None:
    batches = [_boundary_events(), _boundary_events()]
    out = subprocess.run(
        [sys.executable, "-c", _TZ_WRITER, db_url, json.dumps(batches)],
        env=dict(os.environ, TZ="America/St_Johns"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    st_johns, kathmandu = json.loads(out.stdout)
    assert st_johns["offset"] == -(3 * 3600 + 30 * 60), "TZ did not take effect in the child"
    assert kathmandu["offset"] == 5 * 3600 + 45 * 60, "tzset did not take effect in the child"
    for figures in (st_johns, kathmandu):
        assert figures["windows"] == ["2026-01-01-10", "2026-01-01-11"]
    _assert_boundary_buckets(engine, times=2)


def test_hour_boundary_buckets_after_tzset_in_process(engine: Engine) -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kathmandu"
    time.tzset()
    try:
        assert time.localtime(FIRST_MS_OF_11H // 1000).tm_gmtoff == 5 * 3600 + 45 * 60
        log_events(engine, _boundary_events())
        assert hour_window(LAST_MS_OF_10H) == "2026-01-01-10"
        assert hour_window(FIRST_MS_OF_11H) == "2026-01-01-11"
        _assert_boundary_buckets(engine)
        items, _ = recent_events(engine, EventFilter(since=FIRST_MS_OF_11H))
        assert [e["timestamp"] for e in items] == [FIRST_MS_OF_11H]
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


# --- queries -----------------------------------------------------------------------------


@pytest.fixture
def history(engine: Engine) -> list[dict[str, Any]]:
    """Five artifacts in two organizations (two failing), plus two system events, all stored."""
    events = (
        make_events("art_a1", organization_id="org_a", start_ms=BASE_MS, rng=21)
        + make_events(
            "art_a2",
            organization_id="org_a",
            start_ms=BASE_MS + 7_000,
            fail_at="transcription",
            rng=22,
        )
        + make_events("art_b1", organization_id="org_b", start_ms=BASE_MS + 9_000, rng=23)
        + make_events(
            "art_b2",
            organization_id="org_b",
            start_ms=BASE_MS + 15_000,
            fail_at="draft_generation",
            rng=24,
        )
        + make_events("art_b3", organization_id="org_b", start_ms=BASE_MS + 20_000, rng=25)
        + [
            make_event("circuit_breaker_opened", BASE_MS + 8_000, error_message="provider down"),
            make_event(
                "artifact_status_changed", BASE_MS + 8_001, artifact_id="art_a1", error_code="x"
            ),
        ]
    )
    assert len({e["timestamp"] for e in events}) == len(events), "no ties: order is by time"
    random.Random(26).shuffle(events)
    log_events(engine, events[:40])
    log_events(engine, events[40:])
    # newest first; ties (none here) would be in insertion order, reversed
    return sorted(events, key=lambda e: e["timestamp"], reverse=True)


def ids(items: Iterable[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in items]


def test_recent_events_are_newest_first(engine: Engine, history: list[dict[str, Any]]) -> None:
    items, cursor = recent_events(engine, limit=1000)
    assert cursor is None
    assert ids(items) == ids(history)
    items, cursor = recent_events(engine, limit=5)
    assert ids(items) == ids(history[:5])
    assert cursor is not None


FAILURES = model.FAILURE_EVENT_TYPES
FILTER_CASES: list[tuple[str, EventFilter, Any]] = [
    (
        "event_types",
        EventFilter(event_types=("artifact_received", "claims_extracted")),
        lambda e: e["event_type"] in ("artifact_received", "claims_extracted"),
    ),
    (
        "pipeline_stage",
        EventFilter(pipeline_stage="transcription"),
        lambda e: stage_of(e) == "transcription",
    ),
    (
        "pipeline_stage default",
        EventFilter(pipeline_stage="ingestion"),
        lambda e: stage_of(e) == "ingestion",
    ),
    (
        "organization_id",
        EventFilter(organization_id="org_b"),
        lambda e: e.get("organization_id") == "org_b",
    ),
    ("artifact_id", EventFilter(artifact_id="art_a2"), lambda e: e.get("artifact_id") == "art_a2"),
    (
        "errors_only",
        EventFilter(errors_only=True),
        lambda e: (
            e["event_type"] in FAILURES or bool(e.get("error_code") or e.get("error_message"))
        ),
    ),
    ("since", EventFilter(since=BASE_MS + 9_000), lambda e: e["timestamp"] >= BASE_MS + 9_000),
    ("until", EventFilter(until=BASE_MS + 9_000), lambda e: e["timestamp"] < BASE_MS + 9_000),
    (
        "combined",
        EventFilter(
            event_types=("artifact_failed", "artifact_received", "transcription_failed"),
            organization_id="org_a",
            errors_only=True,
            since=BASE_MS,
            until=BASE_MS + 60_000,
        ),
        lambda e: (
            e["event_type"] in ("artifact_failed", "transcription_failed")
            and e.get("organization_id") == "org_a"
        ),
    ),
]


def test_recent_events_filters(
    engine: Engine, history: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    for name, filters, keep in FILTER_CASES:
        with subtests.test(filter=name):
            expected = [e for e in history if keep(e)]
            assert expected, "the case must select something"
            assert len(expected) < len(history), "the case must leave something out"
            items, _ = recent_events(engine, filters, limit=1000)
            assert ids(items) == ids(expected)
            # and page by page, the same
            walked = list(iter_events(engine, filters, page=3))
            assert ids(walked) == ids(expected)


def test_since_is_inclusive_and_until_exclusive(
    engine: Engine, history: list[dict[str, Any]]
) -> None:
    stamps = sorted({e["timestamp"] for e in history})
    lo, hi = stamps[3], stamps[10]
    items, _ = recent_events(engine, EventFilter(since=lo, until=hi), limit=1000)
    got = {e["timestamp"] for e in items}
    assert lo in got and hi not in got
    assert got == {t for t in stamps if lo <= t < hi}
    assert recent_events(engine, EventFilter(since=hi, until=hi))[0] == []


def test_errors_only_takes_failures_and_any_event_carrying_an_error(
    engine: Engine, history: list[dict[str, Any]]
) -> None:
    items, _ = recent_events(engine, EventFilter(errors_only=True), limit=1000)
    types = {e["event_type"] for e in items}
    assert {
        "transcription_failed",
        "artifact_failed",
        "artifact_status_changed",
        "circuit_breaker_opened",
    } <= types
    assert "entity_needs_disambiguation" not in types  # a warning, not an error
    assert all(e["event_type"] in FAILURES or e["error_code"] or e["error_message"] for e in items)


def test_cursor_pagination_walks_every_event_once_with_shared_timestamps(engine: Engine) -> None:
    # 263 events on only 4 distinct timestamps, stored in several batches
    stamps = [BASE_MS + 1_000 * (i % 4) for i in range(263)]
    events = [
        make_event(
            "draft_confirmed",
            ts,
            organization_id="org_a" if i % 3 else "org_b",
            artifact_id=f"a{i}",
        )
        for i, ts in enumerate(stamps)
    ]
    for i in range(0, len(events), 50):
        log_events(engine, events[i : i + 50])
    for page_size, filters in (
        (7, EventFilter()),
        (1, EventFilter(organization_id="org_b")),
        (263, EventFilter()),
    ):
        expected = [
            e
            for e in events
            if not filters.organization_id or e["organization_id"] == filters.organization_id
        ]
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        pages = 0
        while True:
            items, cursor = recent_events(engine, filters, limit=page_size, cursor=cursor)
            assert items, "no empty pages"
            assert len(items) <= page_size
            seen.extend(items)
            pages += 1
            if cursor is None:
                break
        assert pages == math.ceil(len(expected) / page_size)
        assert len(ids(seen)) == len(set(ids(seen))), "repeats"
        assert set(ids(seen)) == set(ids(expected)), "gaps"
        stamps_seen = [e["timestamp"] for e in seen]
        assert stamps_seen == sorted(stamps_seen, reverse=True)


def test_a_page_of_exactly_the_rest_has_no_next_cursor(engine: Engine) -> None:
    log_events(engine, [make_event("draft_rejected", BASE_MS + i) for i in range(14)])
    first, cursor = recent_events(engine, limit=7)
    second, last = recent_events(engine, limit=7, cursor=cursor)
    assert len(first) == len(second) == 7 and last is None
    assert not set(ids(first)) & set(ids(second))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    "not a cursor!",
    "%%%%",
    _b64(b"no-colon"),
    _b64(b"1:2:3"),
    _b64(b"ts:id"),
    _b64(b"\xff\xfe:\x00"),
    _b64(b"1767225600000:"),
    "A",  # impossible base64 length
]


def test_a_bad_cursor_raises_cursor_error(engine: Engine, subtests: pytest.Subtests) -> None:
    log_events(engine, [make_event("draft_rejected")])
    for cursor in BAD_CURSORS:
        with subtests.test(cursor=cursor), pytest.raises(CursorError):
            recent_events(engine, cursor=cursor)


def test_an_out_of_range_cursor_raises_cursor_error(
    engine: Engine, subtests: pytest.Subtests
) -> None:
    # BUG: decode_cursor accepts any integers, and the query then fails in the
    # driver (SQLite OverflowError, PostgreSQL "bigint out of range") instead
    # of raising CursorError (the API turns that into a 500, not a 400).
    log_events(engine, [make_event("draft_rejected")])
    for name, cursor in (
        ("huge timestamp", encode_cursor(2**70, 1)),
        ("huge id", encode_cursor(1, 2**64)),
        ("huge negative", encode_cursor(-(2**70), 1)),
    ):
        with subtests.test(cursor=name), pytest.raises(CursorError):
            recent_events(engine, cursor=cursor)


def test_artifact_timeline_is_oldest_first(engine: Engine, history: list[dict[str, Any]]) -> None:
    for artifact in ("art_a1", "art_b2"):
        expected = sorted(
            (e for e in history if e.get("artifact_id") == artifact), key=lambda e: e["timestamp"]
        )
        assert ids(artifact_timeline(engine, artifact)) == ids(expected)
    assert artifact_timeline(engine, "art_none") == []


def test_artifact_timeline_keeps_insertion_order_for_equal_timestamps(engine: Engine) -> None:
    events = [make_event("draft_confirmed", BASE_MS, artifact_id="a") for _ in range(5)]
    for event in events:
        log_events(engine, [event])
    assert ids(artifact_timeline(engine, "a")) == ids(events)
    assert ids(recent_events(engine)[0]) == ids(reversed(events))


# --- artifact lifecycle ------------------------------------------------------------------------


def _in_flight(engine: Engine, org: str | None = None) -> list[str]:
    return [a["artifact_id"] for a in artifacts_in_flight(engine, organization_id=org)]


def _failed(engine: Engine, org: str | None = None) -> list[str]:
    return [a["artifact_id"] for a in failed_artifacts(engine, organization_id=org)]


def test_lifecycle_received_completed_failed(engine: Engine) -> None:
    done = make_events("done", organization_id="org_a", start_ms=BASE_MS, rng=31)
    broken = make_events(
        "broken", organization_id="org_b", start_ms=BASE_MS, fail_at="claims_extraction", rng=32
    )
    log_events(engine, done[:1] + broken[:1])
    assert sorted(_in_flight(engine)) == ["broken", "done"]
    assert count_in_flight(engine) == 2
    assert count_in_flight(engine, "org_a") == 1
    # every event one at a time: in flight until the terminal event
    for event in done[1:-1]:
        log_events(engine, [event])
        assert "done" in _in_flight(engine)
    log_events(engine, broken[1:])
    assert _in_flight(engine) == ["done"]
    assert _failed(engine) == ["broken"]
    (failed,) = failed_artifacts(engine)
    assert failed["error_message"] == "claims_extraction provider timed out"
    assert failed["organization_id"] == "org_b"
    assert failed["state"] == model.TrackedState.FAILED.value
    log_events(engine, done[-1:])
    assert _in_flight(engine) == []
    assert count_in_flight(engine) == count_in_flight(engine, "org_a") == 0
    assert _failed(engine, "org_a") == []
    assert _failed(engine, "org_b") == ["broken"]


def test_a_retry_puts_a_failed_artifact_back_in_flight(engine: Engine) -> None:
    story = make_events("art_r", organization_id="org_a", fail_at="transcription", rng=33)
    log_events(engine, story)
    assert _failed(engine) == ["art_r"] and count_in_flight(engine) == 0
    ts = story[-1]["timestamp"]
    retry = make_event(
        "retry_initiated",
        ts + 1_000,
        artifact_id="art_r",
        organization_id="org_a",
        metadata={"retry_attempt": 1},
    )
    log_events(engine, [retry])
    assert _failed(engine) == [] and _in_flight(engine) == ["art_r"]
    (state,) = artifacts_in_flight(engine)
    assert state["error_message"] is None
    rerun = make_events("art_r", organization_id="org_a", start_ms=ts + 2_000, rng=34)[1:]
    log_events(
        engine,
        [*rerun, make_event("retry_succeeded", rerun[-1]["timestamp"] + 1, artifact_id="art_r")],
    )
    assert _in_flight(engine) == [] and _failed(engine) == []
    assert count_in_flight(engine) == 0


@pytest.mark.parametrize("same_batch", [False, True], ids=["later batch", "same batch"])
def test_a_late_older_event_does_not_move_a_completed_artifact_back(
    engine: Engine, same_batch: bool
) -> None:
    story = make_events("art_l", organization_id="org_a", rng=35)
    late = [
        make_event(
            "transcription_started",
            story[2]["timestamp"] + 1,
            artifact_id="art_l",
            organization_id="org_a",
        ),
        make_event(
            "artifact_failed",
            story[-1]["timestamp"] - 1,
            artifact_id="art_l",
            organization_id="org_a",
        ),
        make_event(
            "retry_initiated",
            story[-1]["timestamp"] - 2,
            artifact_id="art_l",
            organization_id="org_a",
        ),
    ]
    if same_batch:
        log_events(engine, late + story)
    else:
        log_events(engine, story)
        for event in late:
            log_events(engine, [event])
    assert _in_flight(engine) == [] and _failed(engine) == []
    with engine.connect() as conn:
        state = conn.execute(select(states_t).where(states_t.c.artifact_id == "art_l")).one()
    assert state.state == model.TrackedState.COMPLETED.value
    assert state.last_event_type == "artifact_completed"
    assert state.updated_at == story[-1]["timestamp"]
    assert state.received_at == story[0]["timestamp"]


def test_in_flight_lists_are_most_recently_active_first_and_bounded(engine: Engine) -> None:
    for n in range(6):
        log_events(
            engine,
            [
                make_event(
                    "artifact_received",
                    BASE_MS + n * 10,
                    artifact_id=f"a{n}",
                    organization_id="o" if n % 2 else "p",
                )
            ],
        )
    # a2 moves on last: it becomes the most recently active
    log_events(engine, [make_event("transcription_started", BASE_MS + 100, artifact_id="a2")])
    assert _in_flight(engine) == ["a2", "a5", "a4", "a3", "a1", "a0"]
    assert [a["artifact_id"] for a in artifacts_in_flight(engine, limit=2)] == ["a2", "a5"]
    assert _in_flight(engine, "o") == ["a5", "a3", "a1"]
    assert count_in_flight(engine, "o") == 3 and count_in_flight(engine, "p") == 3
    assert count_in_flight(engine) == 6
    (a2,) = [a for a in artifacts_in_flight(engine) if a["artifact_id"] == "a2"]
    assert a2["current_stage"] == "transcription"
    assert a2["organization_id"] == "p"  # learnt from its first event, kept


def test_states_match_an_independent_replay_of_realistic_traffic(engine: Engine) -> None:
    rng = random.Random(36)
    events = make_traffic(60, spread_ms=10 * 60_000, failure_rate=0.3, rng=rng)
    # cut the story of some artifacts short: they are still in flight
    by_artifact: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_artifact[e["artifact_id"]].append(e)
    for artifact in rng.sample(list(by_artifact), 15):  # first-seen order: deterministic
        by_artifact[artifact] = by_artifact[artifact][: rng.randint(1, 8)]
    events = sorted(
        (e for story in by_artifact.values() for e in story), key=lambda e: e["timestamp"]
    )
    for batch in batches(events, rng):
        log_events(engine, batch)
    last: dict[str, str] = {}
    for e in events:
        if e["event_type"] in ("artifact_completed", "artifact_failed", "artifact_received"):
            last[e["artifact_id"]] = e["event_type"]
    expected_failed = sorted(a for a, t in last.items() if t == "artifact_failed")
    expected_in_flight = sorted(a for a, t in last.items() if t == "artifact_received")
    assert expected_failed and len(expected_in_flight) >= 5
    assert sorted(_failed(engine)) == expected_failed
    assert sorted(_in_flight(engine, None)) == expected_in_flight
    assert count_in_flight(engine) == len(expected_in_flight)
    for org in {e["organization_id"] for e in events}:
        mine = {e["artifact_id"] for e in events if e["organization_id"] == org}
        assert count_in_flight(engine, org) == len(mine & set(expected_in_flight))


# --- property: any mix of repeats lands each event once, counted once ------------------

_POOL = make_traffic(12, failure_rate=0.3, rng=11)  # ~160 events of whole artifact stories
_BATCHES = st.lists(
    st.lists(st.integers(0, len(_POOL) - 1), min_size=1, max_size=120), min_size=1, max_size=6
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=_BATCHES)
def test_any_sequence_of_batches_with_repeats_counts_each_event_once(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]]
) -> None:
    """Batches drawn with repeats (inside a batch and across batches) from one pool.

    The SQLite writer skips stored ids with ``ON CONFLICT`` and finds the new
    rows by rowid only when some were skipped; whatever the mix, the result
    must account for every item, each id is stored once, and the counters
    equal a recount of what is stored.
    """
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}")
    from voicewatch.store import migrate

    migrate(engine)
    seen: set[str] = set()
    for batch in batches:
        items = [_POOL[i] for i in batch]
        result = log_events(engine, items)
        fresh = {item["event_id"] for item in items} - seen
        assert result.accepted == len(fresh)
        assert sorted(result.accepted_ids) == sorted(fresh)
        assert result.accepted + result.duplicates == len(items)
        seen |= fresh
    ids = stored_event_ids(engine)
    assert len(ids) == len(set(ids)) and set(ids) == seen
    assert_counters_equal_recount(engine)
    engine.dispose()


def test_hostile_text_round_trips_exactly_on_both_stores(engine: Engine) -> None:
    """Tabs, newlines, backslashes, quotes and odd Unicode come back byte for byte
    (PostgreSQL batches go through COPY, whose text format escapes them)."""
    from hostile_strings import HOSTILE

    sent = [
        make_event(
            "transcription_failed",
            BASE_MS + i,
            error_message=hostile,
            error_code=hostile[:128],
            metadata={"ai_model": hostile[:128]},
        )
        for i, hostile in enumerate(HOSTILE)
    ]
    assert log_events(engine, sent).accepted == len(sent)
    stored = {e["event_id"]: e for e in iter_events(engine, EventFilter())}
    for event, hostile in zip(sent, HOSTILE, strict=True):
        back = stored[event["event_id"]]
        assert back["error_message"] == hostile
        assert back["error_code"] == hostile[:128]
        assert back["metadata"]["ai_model"] == hostile[:128]
