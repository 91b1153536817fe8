"""One definition of each metric: four readers of one seeded story report equal numbers.

The story goes in through the public ingest path (``POST /api/v1/events``);
then the overview's read model, ``/api/v1/metrics/stages`` over HTTP, the
alert rules (as ``check_health`` runs them) and the Prometheus export
(``GET /metrics``) are asked for queue depth, failure rate and stage health.
Should any of them compute a figure its own way (a copied threshold, a second
queue-depth query with another filter), the numbers part and this test fails.
Runs on SQLite and on PostgreSQL (``live_server``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from factories import make_events
from voicewatch import alerts
from voicewatch.alerts import AlertKind, rules
from voicewatch.alerts.notify import Notifier
from voicewatch.clock import day_start, now_ms
from voicewatch.config import AlertThresholds
from voicewatch.dashboard import overview

STAGES = ("transcription", "claims_extraction", "entity_resolution", "draft_generation")


def _until(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    """An artifact still in flight: its events up to and including the first ``event_type``."""
    cut = next(i for i, e in enumerate(events) if e["event_type"] == event_type)
    return events[: cut + 1]


def _story_events() -> list[dict[str, Any]]:
    """Ten artifacts: four completed, two failed (transcription, claims), four in flight."""
    artifacts = [make_events(f"done{i}", rng=i) for i in range(4)]
    artifacts.append(make_events("failed_t", fail_at="transcription", rng=11))
    artifacts.append(make_events("failed_c", fail_at="claims_extraction", rng=12))
    artifacts.append(_until(make_events("wait_t", rng=13), "transcription_started"))
    artifacts.append(_until(make_events("wait_c", rng=14), "claims_extraction_started"))
    artifacts.append(_until(make_events("wait_e", rng=15), "entity_resolution_started"))
    artifacts.append(_until(make_events("wait_i", rng=16), "artifact_received"))
    return [e for events in artifacts for e in events]


@pytest.fixture
def story(live_server: Any) -> tuple[Any, int]:
    """The story, stamped inside the last minute and inside today (UTC), sent over HTTP.

    Returns (server, now): ``now`` is taken before the events, which all lie
    in [max(now - 60 s, midnight), now), so every reader's window holds all of them.
    """
    now = now_ms()
    events = _story_events()
    start = max(now - 60_000, day_start(now))
    room = max(0, now - start - 1)
    for j, event in enumerate(events):  # keeps each artifact's order
        event["timestamp"] = start + j * room // len(events)
    response = httpx.post(
        f"{live_server.url}/api/v1/events",
        json=events,
        headers=live_server.headers(live_server.ingest_token),
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events)
    return live_server, now


def _alert_figures(server: Any, now: int) -> dict[str, Any]:
    """Queue depth and failure rate as the alert rules see them (thresholds at zero)."""
    thresholds = AlertThresholds(
        queue_depth=0,
        failure_rate_warning=0.0,
        failure_rate_critical=0.0,
        failure_rate_min_received=0,
    )
    report = alerts.check_health(
        server.engine,
        now,
        thresholds,
        notifier=Notifier(stream=None),
        rules={
            AlertKind.QUEUE_DEPTH: rules.rule_queue_depth,
            AlertKind.FAILURE_RATE: rules.rule_failure_rate,
        },
    )
    by_kind = {a["alert_kind"]: a["details"] for a in report.raised}
    return {
        "queue_depth": by_kind[AlertKind.QUEUE_DEPTH.value]["queue_depth"],
        "failure_rate": by_kind[AlertKind.FAILURE_RATE.value]["failure_rate"],
    }


def _prometheus(server: Any) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(unlabelled samples, {metric: {stage: value}}) of ``GET /metrics``."""
    response = httpx.get(f"{server.url}/metrics", headers=server.headers())
    assert response.status_code == 200
    plain: dict[str, float] = {}
    per_stage: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            if "stage" in s.labels:
                per_stage.setdefault(s.name, {})[s.labels["stage"]] = s.value
            elif not s.labels:
                plain[s.name] = s.value
    return plain, per_stage


def test_four_readers_report_the_same_figures(story: tuple[Any, int]) -> None:
    server, now = story
    page = overview.overview_live(server.engine, now)
    nodes = {n["stage"]: n for n in page["nodes"]}
    api = httpx.get(f"{server.url}/api/v1/metrics/stages", headers=server.headers())
    assert api.status_code == 200
    stages = {s["stage"]: s for s in api.json()["stages"]}
    alert = _alert_figures(server, now)
    prom, prom_stage = _prometheus(server)
    health_code = {"green": 0, "yellow": 1, "red": 2}

    # the story itself, so that equal numbers cannot all be zeros
    assert page["cards"]["active_artifacts"] == 4
    assert page["cards"]["failure_rate_today"] == pytest.approx(2 / 10)
    assert stages["transcription"]["failure_rate"] == pytest.approx(1 / 9)
    assert stages["transcription"]["health"] == "yellow"

    # queue depth: in total, and per stage
    total = page["cards"]["active_artifacts"]
    assert alert["queue_depth"] == total
    assert prom["voicewatch_active_artifacts"] == total
    assert sum(n["queue_depth"] for n in nodes.values()) == total
    for stage in STAGES:
        depth = stages[stage]["queue_depth"]
        assert nodes[stage]["queue_depth"] == depth, stage
        assert prom_stage["voicewatch_stage_queue_depth"][stage] == depth, stage

    # failure rate: overall, and per stage
    overall = page["cards"]["failure_rate_today"]
    assert alert["failure_rate"] == pytest.approx(overall)
    assert prom["voicewatch_failure_rate_60m"] == pytest.approx(overall)
    for stage in STAGES:
        rate = stages[stage]["failure_rate"]
        assert nodes[stage]["failure_rate"] == pytest.approx(rate), stage
        assert prom_stage["voicewatch_stage_failure_rate"][stage] == pytest.approx(rate), stage

    # health: one set of thresholds
    for stage in STAGES:
        health = stages[stage]["health"]
        assert nodes[stage]["health"] == health, stage
        assert prom_stage["voicewatch_stage_health"][stage] == health_code[health], stage
