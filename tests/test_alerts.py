"""Health rules and the alert lifecycle, on SQLite and PostgreSQL.

Every scenario is written through the real write paths (``events.log_events``
for events and counters, ``metrics.aggregate_hour`` for history, the budget
functions for spend, plain inserts for circuit and resolution rows) at
explicit times; nothing sleeps. Each rule is shown to fire past its threshold,
not to fire at or just below it, to dedupe while active and to resolve when
its condition clears.
"""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from voicewatch import alerts, metrics
from voicewatch.alerts import AlertKind, AlertNotFound, HealthReport, lifecycle
from voicewatch.alerts.notify import AlertStream, Notifier
from voicewatch.clock import DAY_MS, HOUR_MS, MINUTE_MS, hour_start, parse_iso_ms
from voicewatch.config import ENV_VARS as CONFIG_ENV_VARS
from voicewatch.config import AlertThresholds, Settings
from voicewatch.events import log_events
from voicewatch.pipeline.budgets import add_spend, set_budget
from voicewatch.store import make_engine, write_transaction
from voicewatch.store.tables import ai_service_health, voice_note_entity_resolutions
from voicewatch.store.tables import voice_pipeline_alerts as alerts_t

NOW = parse_iso_ms("2026-01-11T12:00:00Z")
DEFAULTS = AlertThresholds()


# --- scenario helpers -------------------------------------------------------------------


def _event(event_type: str, ts: int, artifact_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "timestamp": ts,
        "artifact_id": artifact_id,
        "organization_id": "org_a",
        **fields,
    }


def _log(engine: Engine, batch: list[dict[str, Any]]) -> None:
    result = log_events(engine, batch)
    assert not result.rejected, result.rejected
    assert result.accepted == len(batch)


def receive(engine: Engine, n: int, at: int) -> list[str]:
    """``n`` new artifacts received at ``at``; returns their ids."""
    ids = [f"art_{uuid.uuid4().hex[:12]}" for _ in range(n)]
    _log(engine, [_event("artifact_received", at, a, pipeline_stage="ingestion") for a in ids])
    return ids


def fail(engine: Engine, ids: list[str], at: int) -> None:
    _log(engine, [_event("artifact_failed", at, a, error_message="boom") for a in ids])


def complete(engine: Engine, ids: list[str], at: int) -> None:
    _log(engine, [_event("artifact_completed", at, a) for a in ids])


def notes_with_latency(engine: Engine, n: int, received_at: int, latency_ms: int) -> None:
    """``n`` artifacts received at ``received_at`` and completed ``latency_ms`` later."""
    ids = [f"art_{uuid.uuid4().hex[:12]}" for _ in range(n)]
    batch = [_event("artifact_received", received_at, a) for a in ids]
    batch += [_event("artifact_completed", received_at + latency_ms, a) for a in ids]
    _log(engine, batch)


def set_circuit(engine: Engine, service: str, state: str, at: int = NOW) -> None:
    status = {"open": "down", "half_open": "degraded", "closed": "healthy"}[state]
    with write_transaction(engine) as conn:
        found = conn.execute(
            select(ai_service_health.c.service).where(ai_service_health.c.service == service)
        ).first()
        values = {"status": status, "circuit_breaker_state": state, "updated_at": at}
        if found:
            conn.execute(
                update(ai_service_health)
                .where(ai_service_health.c.service == service)
                .values(**values)
            )
        else:
            conn.execute(ai_service_health.insert().values(service=service, **values))


def add_resolutions(engine: Engine, n: int, status: str = "needs_disambiguation") -> list[str]:
    ids = [f"res_{uuid.uuid4().hex[:12]}" for _ in range(n)]
    rows = [
        {
            "resolution_id": rid,
            "claim_id": f"claim_{rid}",
            "artifact_id": "art_x",
            "organization_id": "org_a",
            "raw_text": "Jonny",
            "status": status,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for rid in ids
    ]
    with write_transaction(engine) as conn:
        conn.execute(voice_note_entity_resolutions.insert(), rows)
    return ids


def check(
    engine: Engine, now: int = NOW, thresholds: AlertThresholds = DEFAULTS, **kwargs: Any
) -> HealthReport:
    kwargs.setdefault("notifier", Notifier(stream=AlertStream(), webhook=None))
    return alerts.check_health(engine, now, thresholds, **kwargs)


def of_kind(items: list[dict[str, Any]], kind: AlertKind) -> list[dict[str, Any]]:
    return [a for a in items if a["alert_kind"] == kind.value]


def stored(engine: Engine, kind: AlertKind) -> list[dict[str, Any]]:
    """Every stored alert of ``kind`` (active and resolved), oldest first."""
    return sorted(alerts.list_alerts(engine, "all", kind=kind.value), key=lambda a: a["id"])


# --- failure rate -----------------------------------------------------------------------


def test_failure_rate_warns_above_10_escalates_above_25_and_resolves(engine: Engine) -> None:
    kind = AlertKind.FAILURE_RATE
    ids = receive(engine, 20, NOW - 10 * MINUTE_MS)
    fail(engine, ids[:2], NOW - 5 * MINUTE_MS)  # 2/20 = 10%: at the threshold, not above
    assert of_kind(check(engine).raised, kind) == []

    fail(engine, ids[2:3], NOW - 4 * MINUTE_MS)  # 15%
    first = check(engine)
    [raised] = of_kind(first.raised, kind)
    assert raised["severity"] == "warning" and raised["scope"] == ""
    assert raised["details"]["failed"] == 3 and raised["details"]["received"] == 20
    assert "15.0%" in raised["message"]
    again = check(engine)
    assert of_kind(again.raised, kind) == [] and of_kind(again.escalated, kind) == []
    assert len(stored(engine, kind)) == 1

    fail(engine, ids[3:5], NOW - 3 * MINUTE_MS)  # 25%: at the critical threshold
    assert of_kind(check(engine).escalated, kind) == []
    assert stored(engine, kind)[0]["severity"] == "warning"

    fail(engine, ids[5:6], NOW - 2 * MINUTE_MS)  # 30%
    report = check(engine)
    [escalated] = of_kind(report.escalated, kind)
    assert escalated["id"] == raised["id"] and escalated["severity"] == "critical"
    assert escalated["details"]["escalated_at"] == NOW
    assert escalated["details"]["escalated_from"] == "warning"
    assert escalated["raised_at"] == raised["raised_at"]
    assert of_kind(report.raised, kind) == []
    assert len(stored(engine, kind)) == 1

    later = NOW + 40 * MINUTE_MS  # the 30-minute window has moved past every event
    [resolved] = of_kind(check(engine, later).resolved, kind)
    assert resolved["id"] == raised["id"] and resolved["state"] == "resolved"
    assert resolved["resolved_at"] == later
    assert of_kind(check(engine, later).resolved, kind) == []  # idempotent


def test_failure_rate_needs_a_minimum_of_received_artifacts(engine: Engine) -> None:
    kind = AlertKind.FAILURE_RATE
    ids = receive(engine, 4, NOW - 10 * MINUTE_MS)
    fail(engine, ids, NOW - 5 * MINUTE_MS)  # 100%, but only 4 notes
    assert of_kind(check(engine).raised, kind) == []
    receive(engine, 1, NOW - 5 * MINUTE_MS)  # 4 of 5 = 80%
    [raised] = of_kind(check(engine).raised, kind)
    assert raised["severity"] == "critical"


def test_failure_rate_only_counts_the_last_30_minutes(engine: Engine) -> None:
    kind = AlertKind.FAILURE_RATE
    ids = receive(engine, 10, NOW - 45 * MINUTE_MS)
    fail(engine, ids, NOW - 40 * MINUTE_MS)  # all failed, but 40 minutes ago
    receive(engine, 10, NOW - 5 * MINUTE_MS)
    assert of_kind(check(engine).raised, kind) == []


# --- latency ----------------------------------------------------------------------------


def _history(engine: Engine, days_ago: int, n: int, latency_ms: int) -> None:
    """An hour ``days_ago`` days back with ``n`` notes of ``latency_ms``, aggregated."""
    hour = hour_start(NOW - days_ago * DAY_MS) - 2 * HOUR_MS
    notes_with_latency(engine, n, hour + MINUTE_MS, latency_ms)
    metrics.aggregate_hour(engine, hour, now_ms=NOW)


def test_latency_fires_above_twice_the_weighted_history_and_resolves(engine: Engine) -> None:
    kind = AlertKind.LATENCY
    # Weighted by artifacts completed: (1 x 100 s + 9 x 10 s) / 10 = 19 s. (The plain
    # mean of the two hourly averages would be 55 s and never alert below.)
    _history(engine, 2, 1, 100_000)
    _history(engine, 1, 9, 10_000)
    notes_with_latency(engine, 5, NOW - 20 * MINUTE_MS, 38_000)  # exactly 2x: not above
    assert of_kind(check(engine).raised, kind) == []

    notes_with_latency(engine, 5, NOW - 15 * MINUTE_MS, 42_000)  # average 40 s > 38 s
    [raised] = of_kind(check(engine).raised, kind)
    assert raised["details"]["historical_avg_latency_ms"] == pytest.approx(19_000)
    assert raised["details"]["avg_latency_ms"] == pytest.approx(40_000)
    assert of_kind(check(engine).raised, kind) == []
    assert len(stored(engine, kind)) == 1

    later = NOW + 45 * MINUTE_MS
    notes_with_latency(engine, 5, later - 10 * MINUTE_MS, 12_000)  # back to normal
    [resolved] = of_kind(check(engine, later).resolved, kind)
    assert resolved["id"] == raised["id"]


def test_latency_needs_history_and_enough_recent_completions(engine: Engine) -> None:
    kind = AlertKind.LATENCY
    _history(engine, 8, 10, 1_000)  # older than the 7 days looked at
    notes_with_latency(engine, 10, NOW - 20 * MINUTE_MS, 100_000)
    assert of_kind(check(engine).raised, kind) == []  # no history: nothing to compare

    _history(engine, 3, 10, 1_000)
    assert of_kind(check(engine).raised, kind) != []


def test_latency_ignores_fewer_than_the_minimum_completions(engine: Engine) -> None:
    kind = AlertKind.LATENCY
    _history(engine, 1, 10, 1_000)
    notes_with_latency(engine, 4, NOW - 20 * MINUTE_MS, 100_000)
    assert of_kind(check(engine).raised, kind) == []
    notes_with_latency(engine, 1, NOW - 20 * MINUTE_MS, 100_000)
    assert of_kind(check(engine).raised, kind) != []


# --- queue depth and disambiguation backlog ----------------------------------------------


def test_queue_depth_fires_above_50_in_flight_and_resolves(engine: Engine) -> None:
    kind = AlertKind.QUEUE_DEPTH
    ids = receive(engine, 50, NOW - 5 * MINUTE_MS)
    assert of_kind(check(engine).raised, kind) == []
    ids += receive(engine, 1, NOW - 4 * MINUTE_MS)
    [raised] = of_kind(check(engine).raised, kind)
    assert raised["details"]["queue_depth"] == 51
    assert of_kind(check(engine).raised, kind) == []
    complete(engine, ids[:1], NOW - MINUTE_MS)
    [resolved] = of_kind(check(engine).resolved, kind)
    assert resolved["id"] == raised["id"]


def test_disambiguation_backlog_fires_above_100_and_resolves(engine: Engine) -> None:
    kind = AlertKind.DISAMBIGUATION_BACKLOG
    waiting = add_resolutions(engine, 100)
    add_resolutions(engine, 30, status="auto_resolved")  # not waiting for anyone
    assert of_kind(check(engine).raised, kind) == []
    add_resolutions(engine, 1)
    [raised] = of_kind(check(engine).raised, kind)
    assert raised["details"]["backlog"] == 101
    assert of_kind(check(engine).raised, kind) == []
    with write_transaction(engine) as conn:
        conn.execute(
            update(voice_note_entity_resolutions)
            .where(voice_note_entity_resolutions.c.resolution_id == waiting[0])
            .values(status="user_resolved")
        )
    [resolved] = of_kind(check(engine).resolved, kind)
    assert resolved["id"] == raised["id"]


# --- circuit breaker --------------------------------------------------------------------


def test_circuit_breaker_alerts_per_service_holds_while_half_open(engine: Engine) -> None:
    kind = AlertKind.CIRCUIT_BREAKER
    set_circuit(engine, "transcription", "closed")
    set_circuit(engine, "claims", "half_open")  # probing from closed: no alert
    assert of_kind(check(engine).raised, kind) == []

    set_circuit(engine, "transcription", "open")
    set_circuit(engine, "claims", "open")
    raised = of_kind(check(engine).raised, kind)
    assert sorted(a["scope"] for a in raised) == ["claims", "transcription"]
    assert {a["severity"] for a in raised} == {"critical"}
    assert of_kind(check(engine).raised, kind) == []

    set_circuit(engine, "transcription", "half_open")  # not recovered yet
    report = check(engine)
    assert of_kind(report.resolved, kind) == [] and of_kind(report.raised, kind) == []
    set_circuit(engine, "transcription", "closed")
    [resolved] = of_kind(check(engine).resolved, kind)
    assert resolved["scope"] == "transcription"
    assert [a["scope"] for a in of_kind(alerts.list_alerts(engine), kind)] == ["claims"]

    set_circuit(engine, "transcription", "open")  # opens again: a new alert
    [again] = of_kind(check(engine, NOW + MINUTE_MS).raised, kind)
    old = [a for a in stored(engine, kind) if a["scope"] == "transcription"]
    assert [a["state"] for a in old] == ["resolved", "active"]
    assert again["id"] == old[1]["id"] != old[0]["id"]


# --- no artifact processed ----------------------------------------------------------------


def test_stall_fires_when_a_note_waited_an_hour_and_nothing_finished(engine: Engine) -> None:
    kind = AlertKind.PIPELINE_STALLED
    receive(engine, 1, NOW - 59 * MINUTE_MS)
    assert of_kind(check(engine).raised, kind) == []  # waited 59 minutes only
    at = NOW + 2 * MINUTE_MS  # waited 61 minutes, nothing finished in the last 60
    [raised] = of_kind(check(engine, at).raised, kind)
    assert raised["severity"] == "critical" and raised["details"]["waiting"] == 1
    assert of_kind(check(engine, at).raised, kind) == []

    other = receive(engine, 1, at + MINUTE_MS)
    complete(engine, other, at + 2 * MINUTE_MS)  # the pipeline moves again
    [resolved] = of_kind(check(engine, at + 3 * MINUTE_MS).resolved, kind)
    assert resolved["id"] == raised["id"]


def test_stall_stays_quiet_after_traffic_ends_and_for_old_orphans(engine: Engine) -> None:
    kind = AlertKind.PIPELINE_STALLED
    evening = receive(engine, 5, NOW - 3 * HOUR_MS)
    complete(engine, evening, NOW - 3 * HOUR_MS + MINUTE_MS)  # all done, then silence
    receive(engine, 1, NOW - 25 * HOUR_MS)  # an orphan from yesterday, never finished
    assert of_kind(check(engine).raised, kind) == []
    receive(engine, 1, NOW - 23 * HOUR_MS)  # one that waits inside the look-back does
    assert of_kind(check(engine).raised, kind) != []


def test_stall_not_raised_while_other_notes_finish(engine: Engine) -> None:
    kind = AlertKind.PIPELINE_STALLED
    receive(engine, 1, NOW - 2 * HOUR_MS)  # stuck
    done = receive(engine, 1, NOW - 20 * MINUTE_MS)
    complete(engine, done, NOW - 10 * MINUTE_MS)
    assert of_kind(check(engine).raised, kind) == []


# --- budgets --------------------------------------------------------------------------------


def test_budget_warns_at_threshold_escalates_when_exceeded_resolves_next_day(
    engine: Engine,
) -> None:
    kind = AlertKind.BUDGET
    set_budget(engine, "org_a", 10.0, 0.8, now_ms=NOW - HOUR_MS)
    set_budget(engine, "org_zero", 0.0, now_ms=NOW - HOUR_MS)  # AI stopped on purpose
    add_spend(engine, "org_a", 7.99, NOW - HOUR_MS, None)
    assert of_kind(check(engine).raised, kind) == []

    add_spend(engine, "org_a", 0.01, NOW - HOUR_MS, None)  # $8.00 = 80%: reached
    [raised] = of_kind(check(engine).raised, kind)
    assert raised["scope"] == "org_a" and raised["severity"] == "warning"
    assert of_kind(check(engine).raised, kind) == []

    add_spend(engine, "org_a", 2.0, NOW - HOUR_MS, None)  # $10.00: exceeded
    [escalated] = of_kind(check(engine).escalated, kind)
    assert escalated["id"] == raised["id"] and escalated["severity"] == "critical"
    assert "exceeded" in escalated["message"]
    assert len(stored(engine, kind)) == 1

    tomorrow = NOW + DAY_MS  # a new UTC day: nothing spent yet
    [resolved] = of_kind(check(engine, tomorrow).resolved, kind)
    assert resolved["id"] == raised["id"]


# --- lifecycle ------------------------------------------------------------------------------


def _everything_firing(engine: Engine) -> int:
    """A scenario where five (kind, scope) pairs hold; returns how many."""
    receive(engine, 51, NOW - 5 * MINUTE_MS)
    add_resolutions(engine, 101)
    set_circuit(engine, "transcription", "open")
    set_circuit(engine, "claims", "open")
    set_budget(engine, "org_a", 1.0, now_ms=NOW - HOUR_MS)
    add_spend(engine, "org_a", 1.5, NOW - HOUR_MS, None)
    return 5


def _active_rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(alerts_t.c.alert_kind, alerts_t.c.scope).where(alerts_t.c.state == "active")
        ).fetchall()
    return sorted((r[0], r[1]) for r in rows)


def test_check_health_is_idempotent(engine: Engine) -> None:
    expected = _everything_firing(engine)
    first = check(engine)
    assert len(first.raised) == expected and len(first.active) == expected
    second = check(engine)
    assert (second.raised, second.escalated, second.resolved) == ([], [], [])
    assert [a["id"] for a in second.active] == [a["id"] for a in first.active]
    assert len(_active_rows(engine)) == expected == len(set(_active_rows(engine)))


def test_a_stale_view_still_raises_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process raised the alert after this one looked: the unique key keeps one."""
    expected = _everything_firing(engine)
    assert len(check(engine).raised) == expected
    monkeypatch.setattr(lifecycle, "active_by_key", lambda _engine: {})
    report = check(engine)
    assert report.raised == [] and report.resolved == []
    assert len(_active_rows(engine)) == expected


def test_a_stale_view_escalates_the_existing_alert(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_budget(engine, "org_a", 10.0, 0.5, now_ms=NOW - HOUR_MS)
    add_spend(engine, "org_a", 6.0, NOW - HOUR_MS, None)
    [raised] = check(engine).raised
    add_spend(engine, "org_a", 6.0, NOW - HOUR_MS, None)
    monkeypatch.setattr(lifecycle, "active_by_key", lambda _engine: {})
    report = check(engine)
    assert report.raised == []
    assert [(a["id"], a["severity"]) for a in report.escalated] == [(raised["id"], "critical")]


def _race(url: str, barrier: Any, results: Any) -> None:
    """Child process: run the health check at the same moment as the other one."""
    engine = make_engine(url)
    barrier.wait()
    report = alerts.check_health(
        engine, NOW, AlertThresholds(), notifier=Notifier(stream=AlertStream())
    )
    engine.dispose()
    results.put([(a["alert_kind"], a["scope"]) for a in report.raised])


def test_two_processes_checking_at_once_raise_each_alert_once(db_url: str, engine: Engine) -> None:
    expected = _everything_firing(engine)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(db_url, barrier, results)) for _ in "ab"]
    for proc in procs:
        proc.start()
    raised = [key for _ in procs for key in results.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert len(raised) == expected == len(set(raised))
    assert sorted(raised) == _active_rows(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(alerts_t)).scalar_one() == expected


def test_a_failing_rule_leaves_its_alerts_alone(engine: Engine) -> None:
    receive(engine, 51, NOW - 5 * MINUTE_MS)
    [raised] = of_kind(check(engine).raised, AlertKind.QUEUE_DEPTH)
    set_circuit(engine, "transcription", "open")

    def broken(*_args: Any) -> alerts.RuleResult:
        raise RuntimeError("database hiccup")

    rules = {**alerts.RULES, AlertKind.QUEUE_DEPTH: broken}
    report = check(engine, rules=rules)
    assert "RuntimeError: database hiccup" in report.errors["queue_depth"]
    assert report.resolved == []  # not evaluated is not recovered
    assert of_kind(report.raised, AlertKind.CIRCUIT_BREAKER) != []  # the others still ran
    assert raised["id"] in [a["id"] for a in report.active]
    assert any("could not run" in line for line in report.lines())


def test_notifications_for_raised_escalated_resolved(engine: Engine) -> None:
    stream = AlertStream()
    inbox = stream.subscribe()
    notifier = Notifier(stream=stream)
    set_budget(engine, "org_a", 10.0, 0.5, now_ms=NOW - HOUR_MS)
    add_spend(engine, "org_a", 6.0, NOW - HOUR_MS, None)
    check(engine, notifier=notifier)
    check(engine, notifier=notifier)  # nothing changed: nothing sent
    add_spend(engine, "org_a", 6.0, NOW - HOUR_MS, None)
    check(engine, notifier=notifier)
    check(engine, NOW + DAY_MS, notifier=notifier)
    messages = []
    while not inbox.empty():
        messages.append(inbox.get_nowait())
    assert [(m["type"], m["change"], m["alert"]["severity"]) for m in messages] == [
        ("alert", "raised", "warning"),
        ("alert", "escalated", "critical"),
        ("alert", "resolved", "critical"),
    ]
    assert {m["alert"]["scope"] for m in messages} == {"org_a"}


def test_a_broken_notifier_never_fails_the_check(engine: Engine) -> None:
    class Broken(Notifier):
        def alert_changed(self, change: str, alert: dict[str, Any]) -> None:
            raise RuntimeError("hook down")

    set_circuit(engine, "transcription", "open")
    report = check(engine, notifier=Broken())
    assert len(report.raised) == 1 and _active_rows(engine) == [
        ("circuit_breaker_open", "transcription")
    ]


# --- acknowledge and list -------------------------------------------------------------------


def test_acknowledge_records_the_first_who_and_when_and_does_not_resolve(
    engine: Engine,
) -> None:
    set_circuit(engine, "transcription", "open")
    [raised] = check(engine).raised
    stream = AlertStream()
    inbox = stream.subscribe()
    acked = alerts.acknowledge(
        engine, raised["id"], "alice@club.test", NOW + 1000, notifier=Notifier(stream=stream)
    )
    assert acked["acknowledged_by"] == "alice@club.test"
    assert acked["acknowledged_at"] == NOW + 1000 and acked["acknowledged"] is True
    assert acked["state"] == "active"
    again = alerts.acknowledge(
        engine, raised["id"], "bob@club.test", NOW + 9000, notifier=Notifier(stream=stream)
    )
    assert (again["acknowledged_by"], again["acknowledged_at"]) == ("alice@club.test", NOW + 1000)
    assert [m["change"] for m in [inbox.get_nowait()]] == ["acknowledged"] and inbox.empty()

    assert check(engine).resolved == []  # acknowledged, still open
    set_circuit(engine, "transcription", "closed")
    [resolved] = check(engine, NOW + 60_000).resolved
    assert resolved["acknowledged_by"] == "alice@club.test"


def test_acknowledge_unknown_alert_and_nameless_caller(engine: Engine) -> None:
    with pytest.raises(AlertNotFound, match="unknown alert 424242"):
        alerts.acknowledge(engine, 424242, "alice", NOW)
    set_circuit(engine, "transcription", "open")
    [raised] = check(engine).raised
    with pytest.raises(ValueError):
        alerts.acknowledge(engine, raised["id"], "  ", NOW)


def test_list_alerts_filters_newest_first(engine: Engine) -> None:
    set_circuit(engine, "transcription", "open")
    check(engine, NOW)
    receive(engine, 51, NOW - 5 * MINUTE_MS)
    check(engine, NOW + 1000)
    set_circuit(engine, "transcription", "closed")
    check(engine, NOW + 2000)  # the breaker alert resolves
    add_resolutions(engine, 101)
    check(engine, NOW + 3000)

    def kinds(**kw: Any) -> list[str]:
        return [a["alert_kind"] for a in alerts.list_alerts(engine, **kw)]

    assert kinds() == ["disambiguation_backlog", "queue_depth"]
    assert kinds(state="all") == ["disambiguation_backlog", "queue_depth", "circuit_breaker_open"]
    assert kinds(state="resolved") == ["circuit_breaker_open"]
    assert kinds(state="all", severity="critical") == ["circuit_breaker_open"]
    assert kinds(state="all", kind="queue_depth") == ["queue_depth"]
    assert kinds(state="all", since=NOW + 1000) == ["disambiguation_backlog", "queue_depth"]
    assert kinds(state="all", limit=1) == ["disambiguation_backlog"]
    assert kinds(state="all", until=NOW + 3000) == ["queue_depth", "circuit_breaker_open"]
    assert kinds(state="all", since=NOW + 1000, until=NOW + 1001) == ["queue_depth"]
    assert alerts.count_active(engine) == len(kinds())
    with pytest.raises(ValueError, match="unknown state"):
        alerts.list_alerts(engine, state="open")
    with pytest.raises(ValueError, match="unknown severity"):
        alerts.list_alerts(engine, severity="dire")


# --- thresholds -----------------------------------------------------------------------------


def test_thresholds_from_env_override_the_defaults() -> None:
    env = {"VOICEWATCH_ALERT_QUEUE_DEPTH": "3", "VOICEWATCH_ALERT_FAILURE_RATE_WARNING": "0.2"}
    t = AlertThresholds.from_env(env)
    assert t.queue_depth == 3 and t.failure_rate_warning == 0.2
    assert t.failure_rate_critical == 0.25 and t.disambiguation_backlog == 100
    assert AlertThresholds.from_env({}) == AlertThresholds()
    assert set(CONFIG_ENV_VARS) >= set(env)
    assert Settings(alert_thresholds=t).alert_thresholds.queue_depth == 3
    with pytest.raises(ValueError, match="VOICEWATCH_ALERT_QUEUE_DEPTH"):
        AlertThresholds.from_env({"VOICEWATCH_ALERT_QUEUE_DEPTH": "many"})
    with pytest.raises(ValueError, match="failure_rate_warning"):
        AlertThresholds.from_env({"VOICEWATCH_ALERT_FAILURE_RATE_WARNING": "0.5"})
    with pytest.raises(ValueError):
        AlertThresholds.from_env({"VOICEWATCH_ALERT_LATENCY_FACTOR": "nan"})


def test_check_health_reads_thresholds_from_the_environment(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    receive(engine, 3, NOW - 5 * MINUTE_MS)
    monkeypatch.setenv("VOICEWATCH_ALERT_QUEUE_DEPTH", "2")
    report = alerts.check_health(engine, NOW, notifier=Notifier(stream=AlertStream()))
    assert of_kind(report.raised, AlertKind.QUEUE_DEPTH) != []
