"""Metric snapshots (metrics.py) on real SQLite and real PostgreSQL.

The fixture is a hand-written story of 12 artifacts over three UTC days and three
organizations, fed through the real ``events.log_events``. Every expected figure
below is worked out by hand from that story and written here as arithmetic on
its numbers (never computed by the code under test); the comments show the sums.

Story conventions (``done`` / ``failed`` below): an artifact is received at t0;
each stage starts 1 s after the previous event and completes after its
duration; ``artifact_completed`` follows 1 s after the last stage, so its
end-to-end latency is 5 s + the four stage durations. AI costs: transcription
0.01, claims extraction 0.02, draft generation 0.03 (a whole artifact: 0.06).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select

from factories import BASE_MS, make_event, make_traffic
from voicewatch import metrics
from voicewatch.events import log_events
from voicewatch.store.tables import organizations
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t

S, M, H, DAY = 1_000, 60_000, 3_600_000, 86_400_000
D0 = BASE_MS  # 2026-01-01T00:00:00Z
D1, D2, D3 = D0 + DAY, D0 + 2 * DAY, D0 + 3 * DAY
#: "now" for the fixture's aggregations: long after the three days.
NOW = D0 + 10 * DAY


def at(day: int, hour: int, minute: int = 0, second: float = 0) -> int:
    return day + hour * H + minute * M + round(second * 1000)


# --- the story --------------------------------------------------------------------------

_STAGES = (
    ("transcription", "transcription_started", "transcription_completed", "transcription_failed"),
    (
        "claims_extraction",
        "claims_extraction_started",
        "claims_extracted",
        "claims_extraction_failed",
    ),
    (
        "entity_resolution",
        "entity_resolution_started",
        "entity_resolution_completed",
        "artifact_failed",
    ),
    ("draft_generation", "draft_generation_started", "drafts_generated", "artifact_failed"),
)


def _meta(tr_conf: float, claims: int, cl_conf: float, ents: int, dis: int, drafts: int) -> list:
    return [
        {"confidence_score": tr_conf, "ai_cost": 0.01},
        {"claim_count": claims, "confidence_score": cl_conf, "ai_cost": 0.02},
        {"entity_count": ents, "disambiguation_count": dis},
        {"draft_count": drafts, "ai_cost": 0.03},
    ]


def _story(
    artifact: str, org: str, t0: int, durations: tuple[int, ...], meta: list, fail_after: int | None
) -> list[dict[str, Any]]:
    base = {"artifact_id": artifact, "organization_id": org, "coach_user_id": f"coach_{org}"}
    out = [make_event("artifact_received", t0, **base, pipeline_stage="ingestion")]
    ts = t0
    for index, (stage, started, completed, failed) in enumerate(_STAGES):
        ts += S
        out.append(make_event(started, ts, **base, pipeline_stage=stage, stage_started_at=ts))
        if index == len(durations):  # this stage fails after fail_after ms
            assert fail_after is not None
            ts += fail_after
            out.append(
                make_event(
                    failed,
                    ts,
                    **base,
                    pipeline_stage=stage,
                    duration_ms=fail_after,
                    error_message=f"{stage} broke",
                    error_code="boom",
                )
            )
            if failed != "artifact_failed":
                ts += S
                out.append(make_event("artifact_failed", ts, **base, pipeline_stage=stage))
            return out
        ts += durations[index]
        kind = completed
        if stage == "entity_resolution" and meta[index]["disambiguation_count"]:
            kind = "entity_needs_disambiguation"
        out.append(
            make_event(
                kind,
                ts,
                **base,
                pipeline_stage=stage,
                duration_ms=durations[index],
                metadata=meta[index],
            )
        )
    out.append(make_event("artifact_completed", ts + S, **base))
    return out


def done(artifact: str, org: str, t0: int, durations: tuple[int, int, int, int], *meta: Any):
    return _story(artifact, org, t0, durations, _meta(*meta), None)


def failed(artifact: str, org: str, t0: int, durations: tuple[int, ...], fail_after: int, *meta):
    return _story(artifact, org, t0, durations, _meta(*meta), fail_after)


def story_events() -> list[dict[str, Any]]:
    """The fixture. meta = (transcript confidence, claims, claim confidence, entities,
    disambiguations, drafts)."""
    events: list[dict[str, Any]] = []
    # Day 0, hour 10
    events += done("A1", "org_a", at(D0, 10), (4000, 3000, 1000, 2000), 0.9, 3, 0.8, 4, 0, 3)
    events += done("A2", "org_a", at(D0, 10, 10), (6000, 5000, 2000, 4000), 0.7, 2, 0.6, 2, 1, 2)
    events += failed("B1", "org_b", at(D0, 10, 20), (), 3000, 0, 0, 0, 0, 0, 0)
    events += failed("C1", "org_c", at(D0, 10, 30), (5000, 4000), 1500, 0.8, 1, 0.9, 0, 0, 0)
    # received 10:59:50, transcribed by 10:59:59, the rest (and completion at 11:00:15) in hour 11
    events += done(
        "A3", "org_a", at(D0, 10, 59, 50), (8000, 6000, 1000, 5000), 0.85, 2, 0.7, 3, 2, 2
    )
    # Day 0, hour 11: a budget event (its ai_cost is a running total, not a cost) and a
    # platform event without an organization
    events.append(
        make_event(
            "budget_threshold_reached",
            at(D0, 11, 30),
            organization_id="org_b",
            metadata={"ai_cost": 4.5},
        )
    )
    events.append(make_event("circuit_breaker_opened", at(D0, 11, 40)))
    # Day 0, hour 15
    events += done("B2", "org_b", at(D0, 15), (2000, 2000, 2000, 2000), 0.95, 4, 0.85, 5, 0, 4)
    # Day 1, hours 9 and 14
    events += done("C2", "org_c", at(D1, 9), (3000, 3000, 3000, 3000), 0.6, 2, 0.5, 2, 2, 1)
    events += failed("C3", "org_c", at(D1, 9, 30), (4000, 2000, 1000), 500, 0.9, 3, 0.8, 3, 0, 0)
    events += done("A4", "org_a", at(D1, 14), (1000, 1000, 1000, 1000), 0.8, 1, 0.9, 1, 0, 1)
    # Day 2, hour 23
    events += failed("B3", "org_b", at(D2, 23), (3000,), 2500, 0.75, 0, 0, 0, 0, 0)
    events += done("A5", "org_a", at(D2, 23, 59), (10000,) * 4, 0.5, 5, 0.5, 5, 5, 5)
    return events


def load_story(engine: Engine) -> None:
    result = log_events(engine, story_events())
    assert not result.rejected, result.rejected


# --- expectations, by hand ------------------------------------------------------------------

METRIC_FIELDS = (
    "artifacts_received",
    "artifacts_completed",
    "artifacts_failed",
    "avg_transcription_latency",
    "avg_claims_extraction_latency",
    "avg_entity_resolution_latency",
    "avg_draft_generation_latency",
    "avg_end_to_end_latency",
    "p95_end_to_end_latency",
    "avg_transcript_confidence",
    "avg_claim_confidence",
    "auto_resolution_rate",
    "disambiguation_rate",
    "transcription_failure_rate",
    "claims_extraction_failure_rate",
    "entity_resolution_failure_rate",
    "overall_failure_rate",
    "total_claims_extracted",
    "total_entities_resolved",
    "total_drafts_generated",
    "total_ai_cost",
    "avg_cost_per_artifact",
)
ZERO: dict[str, float] = dict.fromkeys(METRIC_FIELDS, 0)

# D0 10:00 — A1, A2 complete; B1 fails in transcription; C1 fails in entity resolution;
# A3 received and transcribed.
H10 = ZERO | {
    "artifacts_received": 5,  # A1 A2 B1 C1 A3
    "artifacts_completed": 2,  # A1 A2
    "artifacts_failed": 2,  # B1 C1
    "avg_transcription_latency": (4000 + 6000 + 5000 + 8000) / 4,  # A1 A2 C1 A3
    "avg_claims_extraction_latency": (3000 + 5000 + 4000) / 3,  # A1 A2 C1
    "avg_entity_resolution_latency": (1000 + 2000) / 2,  # A1 A2
    "avg_draft_generation_latency": (2000 + 4000) / 2,
    "avg_end_to_end_latency": (15000 + 22000) / 2,  # 5 s + stages
    "p95_end_to_end_latency": 22000,  # sorted [15000, 22000][floor(2 * 0.95) = 1]
    "avg_transcript_confidence": (0.9 + 0.7 + 0.8 + 0.85) / 4,
    "avg_claim_confidence": (0.8 + 0.6 + 0.9) / 3,
    "auto_resolution_rate": (6 - 1) / 6,  # entities 4 + 2, disambiguations 0 + 1
    "disambiguation_rate": 1 / 6,
    "transcription_failure_rate": 1 / 5,  # B1 of 5 started
    "claims_extraction_failure_rate": 0 / 3,
    "entity_resolution_failure_rate": 1 / 3,  # C1 of A1 A2 C1
    "overall_failure_rate": 2 / 5,
    "total_claims_extracted": 3 + 2 + 1,
    "total_entities_resolved": 4 + 2,
    "total_drafts_generated": 3 + 2,
    "total_ai_cost": 0.06 + 0.06 + 0.03 + 0.01,  # A1 A2 C1 A3(transcription)
    "avg_cost_per_artifact": (0.06 + 0.06 + 0.03 + 0.01) / 4,
}
H10_A = ZERO | {
    "artifacts_received": 3,  # A1 A2 A3
    "artifacts_completed": 2,
    "avg_transcription_latency": (4000 + 6000 + 8000) / 3,
    "avg_claims_extraction_latency": (3000 + 5000) / 2,
    "avg_entity_resolution_latency": (1000 + 2000) / 2,
    "avg_draft_generation_latency": (2000 + 4000) / 2,
    "avg_end_to_end_latency": (15000 + 22000) / 2,
    "p95_end_to_end_latency": 22000,
    "avg_transcript_confidence": (0.9 + 0.7 + 0.85) / 3,
    "avg_claim_confidence": (0.8 + 0.6) / 2,
    "auto_resolution_rate": 5 / 6,
    "disambiguation_rate": 1 / 6,
    "total_claims_extracted": 3 + 2,
    "total_entities_resolved": 4 + 2,
    "total_drafts_generated": 3 + 2,
    "total_ai_cost": 0.06 + 0.06 + 0.01,
    "avg_cost_per_artifact": (0.06 + 0.06 + 0.01) / 3,
}
H10_B = ZERO | {
    "artifacts_received": 1,
    "artifacts_failed": 1,
    "transcription_failure_rate": 1 / 1,
    "overall_failure_rate": 1 / 1,
}
H10_C = ZERO | {
    "artifacts_received": 1,
    "artifacts_failed": 1,
    "avg_transcription_latency": 5000,
    "avg_claims_extraction_latency": 4000,
    "avg_transcript_confidence": 0.8,
    "avg_claim_confidence": 0.9,
    "entity_resolution_failure_rate": 1 / 1,
    "overall_failure_rate": 1 / 1,
    "total_claims_extracted": 1,
    "total_ai_cost": 0.01 + 0.02,
    "avg_cost_per_artifact": 0.03 / 1,
}
# D0 11:00 — the rest of A3 (completes 11:00:15, 25 s after its receipt)
H11 = ZERO | {
    "artifacts_completed": 1,
    "avg_claims_extraction_latency": 6000,
    "avg_entity_resolution_latency": 1000,
    "avg_draft_generation_latency": 5000,
    "avg_end_to_end_latency": 25000,
    "p95_end_to_end_latency": 25000,
    "avg_claim_confidence": 0.7,
    "auto_resolution_rate": (3 - 2) / 3,
    "disambiguation_rate": 2 / 3,
    "total_claims_extracted": 2,
    "total_entities_resolved": 3,
    "total_drafts_generated": 2,
    "total_ai_cost": 0.02 + 0.03,
    "avg_cost_per_artifact": 0.05 / 1,
}
# D0 15:00 — B2, every stage 2 s, 13 s end to end
H15 = ZERO | {
    "artifacts_received": 1,
    "artifacts_completed": 1,
    "avg_transcription_latency": 2000,
    "avg_claims_extraction_latency": 2000,
    "avg_entity_resolution_latency": 2000,
    "avg_draft_generation_latency": 2000,
    "avg_end_to_end_latency": 13000,
    "p95_end_to_end_latency": 13000,
    "avg_transcript_confidence": 0.95,
    "avg_claim_confidence": 0.85,
    "auto_resolution_rate": 5 / 5,
    "total_claims_extracted": 4,
    "total_entities_resolved": 5,
    "total_drafts_generated": 4,
    "total_ai_cost": 0.06,
    "avg_cost_per_artifact": 0.06,
}
# D1 09:00 — C2 completes (17 s), C3 fails in draft generation
D1_H09 = ZERO | {
    "artifacts_received": 2,
    "artifacts_completed": 1,
    "artifacts_failed": 1,
    "avg_transcription_latency": (3000 + 4000) / 2,
    "avg_claims_extraction_latency": (3000 + 2000) / 2,
    "avg_entity_resolution_latency": (3000 + 1000) / 2,
    "avg_draft_generation_latency": 3000,
    "avg_end_to_end_latency": 17000,
    "p95_end_to_end_latency": 17000,
    "avg_transcript_confidence": (0.6 + 0.9) / 2,
    "avg_claim_confidence": (0.5 + 0.8) / 2,
    "auto_resolution_rate": (5 - 2) / 5,  # entities 2 + 3, disambiguations 2 + 0
    "disambiguation_rate": 2 / 5,
    "overall_failure_rate": 1 / 2,
    "total_claims_extracted": 2 + 3,
    "total_entities_resolved": 2 + 3,
    "total_drafts_generated": 1,
    "total_ai_cost": 0.06 + 0.03,
    "avg_cost_per_artifact": 0.09 / 2,
}
# D1 14:00 — A4, every stage 1 s, 9 s end to end
D1_H14 = ZERO | {
    "artifacts_received": 1,
    "artifacts_completed": 1,
    "avg_transcription_latency": 1000,
    "avg_claims_extraction_latency": 1000,
    "avg_entity_resolution_latency": 1000,
    "avg_draft_generation_latency": 1000,
    "avg_end_to_end_latency": 9000,
    "p95_end_to_end_latency": 9000,
    "avg_transcript_confidence": 0.8,
    "avg_claim_confidence": 0.9,
    "auto_resolution_rate": 1,
    "total_claims_extracted": 1,
    "total_entities_resolved": 1,
    "total_drafts_generated": 1,
    "total_ai_cost": 0.06,
    "avg_cost_per_artifact": 0.06,
}
# D2 23:00 — B3 fails in claims extraction; A5 (10 s stages, 45 s end to end)
D2_H23_A = ZERO | {
    "artifacts_received": 1,
    "artifacts_completed": 1,
    "avg_transcription_latency": 10000,
    "avg_claims_extraction_latency": 10000,
    "avg_entity_resolution_latency": 10000,
    "avg_draft_generation_latency": 10000,
    "avg_end_to_end_latency": 45000,
    "p95_end_to_end_latency": 45000,
    "avg_transcript_confidence": 0.5,
    "avg_claim_confidence": 0.5,
    "auto_resolution_rate": (5 - 5) / 5,
    "disambiguation_rate": 5 / 5,
    "total_claims_extracted": 5,
    "total_entities_resolved": 5,
    "total_drafts_generated": 5,
    "total_ai_cost": 0.06,
    "avg_cost_per_artifact": 0.06,
}
D2_H23_B = ZERO | {
    "artifacts_received": 1,
    "artifacts_failed": 1,
    "avg_transcription_latency": 3000,
    "avg_transcript_confidence": 0.75,
    "claims_extraction_failure_rate": 1 / 1,
    "overall_failure_rate": 1 / 1,
    "total_ai_cost": 0.01,
    "avg_cost_per_artifact": 0.01,
}
D2_H23 = ZERO | {
    "artifacts_received": 2,
    "artifacts_completed": 1,
    "artifacts_failed": 1,
    "avg_transcription_latency": (3000 + 10000) / 2,
    "avg_claims_extraction_latency": 10000,
    "avg_entity_resolution_latency": 10000,
    "avg_draft_generation_latency": 10000,
    "avg_end_to_end_latency": 45000,
    "p95_end_to_end_latency": 45000,
    "avg_transcript_confidence": (0.75 + 0.5) / 2,
    "avg_claim_confidence": 0.5,
    "auto_resolution_rate": 0,
    "disambiguation_rate": 1,
    "claims_extraction_failure_rate": 1 / 2,  # B3 of B3 A5
    "overall_failure_rate": 1 / 2,
    "total_claims_extracted": 5,
    "total_entities_resolved": 5,
    "total_drafts_generated": 5,
    "total_ai_cost": 0.01 + 0.06,
    "avg_cost_per_artifact": 0.07 / 2,
}

#: Every hourly snapshot other than an empty platform hour, by (scope, hour start).
EXPECTED_HOURLY: dict[tuple[str, int], dict[str, float]] = {
    ("", at(D0, 10)): H10,
    ("org_a", at(D0, 10)): H10_A,
    ("org_b", at(D0, 10)): H10_B,
    ("org_c", at(D0, 10)): H10_C,
    ("", at(D0, 11)): H11,
    ("org_a", at(D0, 11)): H11,  # the other two events of the hour carry no artifact figures
    ("org_b", at(D0, 11)): ZERO,  # only the budget event: its ai_cost is not a cost
    ("", at(D0, 15)): H15,
    ("org_b", at(D0, 15)): H15,
    ("", at(D1, 9)): D1_H09,
    ("org_c", at(D1, 9)): D1_H09,
    ("", at(D1, 14)): D1_H14,
    ("org_a", at(D1, 14)): D1_H14,
    ("", at(D2, 23)): D2_H23,
    ("org_a", at(D2, 23)): D2_H23_A,
    ("org_b", at(D2, 23)): D2_H23_B,
}

# Daily: sums of the hours, averages weighted by their counts. The daily p95 comes from
# the merged histograms and is checked within 5% of the exact value written here.
DAY0 = ZERO | {
    "artifacts_received": 5 + 0 + 1,
    "artifacts_completed": 2 + 1 + 1,
    "artifacts_failed": 2,
    "avg_transcription_latency": (4000 + 6000 + 5000 + 8000 + 2000) / 5,
    "avg_claims_extraction_latency": (3000 + 5000 + 4000 + 6000 + 2000) / 5,
    "avg_entity_resolution_latency": (1000 + 2000 + 1000 + 2000) / 4,
    "avg_draft_generation_latency": (2000 + 4000 + 5000 + 2000) / 4,
    "avg_end_to_end_latency": (15000 + 22000 + 25000 + 13000) / 4,
    "p95_end_to_end_latency": 25000,  # sorted [13000, 15000, 22000, 25000][3]
    "avg_transcript_confidence": (0.9 + 0.7 + 0.8 + 0.85 + 0.95) / 5,
    "avg_claim_confidence": (0.8 + 0.6 + 0.9 + 0.7 + 0.85) / 5,
    "auto_resolution_rate": (14 - 3) / 14,  # entities 4+2+3+5, disambiguations 0+1+2+0
    "disambiguation_rate": 3 / 14,
    "transcription_failure_rate": 1 / 6,
    "claims_extraction_failure_rate": 0 / 5,
    "entity_resolution_failure_rate": 1 / 5,
    "overall_failure_rate": 2 / 6,
    "total_claims_extracted": 6 + 2 + 4,
    "total_entities_resolved": 6 + 3 + 5,
    "total_drafts_generated": 5 + 2 + 4,
    "total_ai_cost": 0.16 + 0.05 + 0.06,
    # weighted by the hours' cost-bearing artifact counts 4 + 1 + 1: A3's costs fall in
    # hours 10 and 11, so it counts in both (DESIGN: days are built from hours)
    "avg_cost_per_artifact": (0.16 + 0.05 + 0.06) / 6,
}
DAY0_A = ZERO | {
    "artifacts_received": 3,
    "artifacts_completed": 3,
    "avg_transcription_latency": (4000 + 6000 + 8000) / 3,
    "avg_claims_extraction_latency": (3000 + 5000 + 6000) / 3,
    "avg_entity_resolution_latency": (1000 + 2000 + 1000) / 3,
    "avg_draft_generation_latency": (2000 + 4000 + 5000) / 3,
    "avg_end_to_end_latency": (15000 + 22000 + 25000) / 3,
    "p95_end_to_end_latency": 25000,  # sorted [15000, 22000, 25000][floor(2.85) = 2]
    "avg_transcript_confidence": (0.9 + 0.7 + 0.85) / 3,
    "avg_claim_confidence": (0.8 + 0.6 + 0.7) / 3,
    "auto_resolution_rate": (9 - 3) / 9,
    "disambiguation_rate": 3 / 9,
    "total_claims_extracted": 3 + 2 + 2,
    "total_entities_resolved": 4 + 2 + 3,
    "total_drafts_generated": 3 + 2 + 2,
    "total_ai_cost": 0.13 + 0.05,
    "avg_cost_per_artifact": (0.13 + 0.05) / (3 + 1),
}
DAY0_B = ZERO | {
    "artifacts_received": 2,  # B1 B2
    "artifacts_completed": 1,
    "artifacts_failed": 1,
    "avg_transcription_latency": 2000,
    "avg_claims_extraction_latency": 2000,
    "avg_entity_resolution_latency": 2000,
    "avg_draft_generation_latency": 2000,
    "avg_end_to_end_latency": 13000,
    "p95_end_to_end_latency": 13000,
    "avg_transcript_confidence": 0.95,
    "avg_claim_confidence": 0.85,
    "auto_resolution_rate": 1,
    "transcription_failure_rate": 1 / 2,
    "overall_failure_rate": 1 / 2,
    "total_claims_extracted": 4,
    "total_entities_resolved": 5,
    "total_drafts_generated": 4,
    "total_ai_cost": 0.06,
    "avg_cost_per_artifact": 0.06,
}
DAY1 = ZERO | {
    "artifacts_received": 3,
    "artifacts_completed": 2,
    "artifacts_failed": 1,
    "avg_transcription_latency": (3000 + 4000 + 1000) / 3,
    "avg_claims_extraction_latency": (3000 + 2000 + 1000) / 3,
    "avg_entity_resolution_latency": (3000 + 1000 + 1000) / 3,
    "avg_draft_generation_latency": (3000 + 1000) / 2,
    "avg_end_to_end_latency": (17000 + 9000) / 2,
    "p95_end_to_end_latency": 17000,
    "avg_transcript_confidence": (0.6 + 0.9 + 0.8) / 3,
    "avg_claim_confidence": (0.5 + 0.8 + 0.9) / 3,
    "auto_resolution_rate": (6 - 2) / 6,
    "disambiguation_rate": 2 / 6,
    "overall_failure_rate": 1 / 3,
    "total_claims_extracted": 2 + 3 + 1,
    "total_entities_resolved": 2 + 3 + 1,
    "total_drafts_generated": 1 + 1,
    "total_ai_cost": 0.06 + 0.03 + 0.06,
    "avg_cost_per_artifact": 0.15 / 3,
}
EXPECTED_DAILY: dict[tuple[str, int], dict[str, float]] = {
    ("", D0): DAY0,
    ("org_a", D0): DAY0_A,
    ("org_b", D0): DAY0_B,
    ("org_c", D0): H10_C,
    ("", D1): DAY1,
    ("org_a", D1): D1_H14,
    ("org_c", D1): D1_H09,
    ("", D2): D2_H23,
    ("org_a", D2): D2_H23_A,
    ("org_b", D2): D2_H23_B,
}


# --- helpers -----------------------------------------------------------------------------------


def snapshot_rows(engine: Engine, period_type: str) -> dict[tuple[str, int], dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(snapshots_t).where(snapshots_t.c.period_type == period_type)
        ).fetchall()
    out = {(r.scope, r.period_start): dict(r._mapping) for r in rows}
    assert len(out) == len(rows), "a duplicate snapshot row"
    return out


def assert_metrics(row: dict[str, Any], expected: dict[str, float], *, p95_rel: float = 0) -> None:
    for name in METRIC_FIELDS:
        value = row[name]
        assert not (isinstance(value, float) and math.isnan(value)), name
        want = expected[name]
        if name == "p95_end_to_end_latency" and p95_rel:
            assert value == pytest.approx(want, rel=p95_rel, abs=1e-9), name
        else:
            assert value == pytest.approx(want, rel=1e-9, abs=1e-12), (name, value, want)


@pytest.fixture
def story(engine: Engine) -> Engine:
    load_story(engine)
    return engine


@pytest.fixture
def aggregated(story: Engine) -> Engine:
    metrics.aggregate_range(story, D0, D3, "hourly", now_ms=NOW)
    metrics.aggregate_range(story, D0, D3, "daily", now_ms=NOW)
    return story


# --- hourly and daily snapshots ------------------------------------------------------------------


def test_hourly_snapshots_match_by_hand(aggregated: Engine) -> None:
    rows = snapshot_rows(aggregated, "hourly")
    # 72 platform hours (empty ones are zeros) and the 10 organization-hours with events
    assert len(rows) == 72 + 10
    assert {k for k in rows if k[0]} == {k for k in EXPECTED_HOURLY if k[0]}
    for (scope, start), row in rows.items():
        assert_metrics(row, EXPECTED_HOURLY.get((scope, start), ZERO))
        assert row["period_end"] == start + H
        assert row["created_at"] == NOW
    assert rows[("", at(D0, 10))]["time_window"] == "2026-01-01-10"
    assert rows[("", at(D2, 23))]["time_window"] == "2026-01-03-23"
    weights = json.loads(rows[("", at(D0, 10))]["weights"])
    assert weights["end_to_end_latency"] == 2
    assert weights["transcription_started"] == 5
    assert weights["entity_resolution_failed"] == 1
    assert weights["cost_artifacts"] == 4


def test_daily_snapshots_match_by_hand(aggregated: Engine) -> None:
    rows = snapshot_rows(aggregated, "daily")
    assert set(rows) == set(EXPECTED_DAILY)
    for key, row in rows.items():
        assert_metrics(row, EXPECTED_DAILY[key], p95_rel=0.05)
        assert row["period_end"] == key[1] + DAY
    assert rows[("", D0)]["time_window"] == "2026-01-01"
    # draft generation has no failure-rate column; its counts ride in the weights
    weights = json.loads(rows[("", D1)]["weights"])
    assert (weights["draft_generation_started"], weights["draft_generation_failed"]) == (3, 1)


def test_same_figures_when_the_database_cannot_bucket(
    story: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without SQL ln() (SQLite built without math functions) durations are bucketed in Python."""
    from voicewatch.metrics import period

    in_sql = metrics.period_totals(story, D0, D1)
    monkeypatch.setitem(period._HAS_LN, str(story.url), False)
    in_python = metrics.period_totals(story, D0, D1)
    assert set(in_sql) == set(in_python) == {"", "org_a", "org_b", "org_c"}
    for scope, totals in in_sql.items():
        assert totals.histograms == in_python[scope].histograms
        # (float sums may differ in the last bit: the SQL groups are split by bucket)
        assert metrics.snapshot_values(totals) == pytest.approx(
            metrics.snapshot_values(in_python[scope]), rel=1e-12
        )
    # hand check: the day's transcription durations 4000 5000 6000 8000 2000 ms
    hist = in_sql[""].histograms["transcription"]
    assert hist.count == 5
    assert hist.quantile(0.95) == pytest.approx(8000, rel=0.05)


def test_zero_durations_and_costs_on_other_events(engine: Engine) -> None:
    """0 ms stage durations land in the zero bucket (no log(0) anywhere); missing ones are
    counted as completions but not in the latency figures."""
    base = {"artifact_id": "Z1", "organization_id": "org_a"}
    events = [
        make_event("transcription_completed", at(D0, 5, 1), **base, duration_ms=0),
        make_event("transcription_completed", at(D0, 5, 2), **base, duration_ms=0.0001),
        make_event("transcription_completed", at(D0, 5, 3), **base, duration_ms=300),
        make_event("transcription_completed", at(D0, 5, 4), **base),  # no duration
        # costs on other event types count too; one without an artifact adds to the total
        # but not to the artifacts with a cost
        make_event("retry_succeeded", at(D0, 5, 5), **base, metadata={"ai_cost": 0.5}),
        make_event("retry_succeeded", at(D0, 5, 6), metadata={"ai_cost": 0.25}),
    ]
    assert not log_events(engine, events).rejected
    metrics.aggregate_hour(engine, at(D0, 5), now_ms=NOW)
    row = snapshot_rows(engine, "hourly")[("", at(D0, 5))]
    assert row["avg_transcription_latency"] == pytest.approx((0 + 0.0001 + 300) / 3)
    weights = json.loads(row["weights"])
    assert (weights["transcription_completed"], weights["transcription_latency"]) == (4, 3)
    assert row["total_ai_cost"] == pytest.approx(0.5 + 0.25)
    assert row["avg_cost_per_artifact"] == pytest.approx((0.5 + 0.25) / 1)
    hist = json.loads(row["latency_histogram"])["transcription"]
    assert (hist["n"], hist["zero"]) == (3, 2)
    stages = metrics.stage_breakdown(engine, at(D0, 6))["stages"]
    assert stages[0]["p95_latency_ms"] == pytest.approx(300, rel=0.05)  # sorted[floor(2.85)]


def test_empty_hours_and_days_give_zeros_never_nan(engine: Engine) -> None:
    assert metrics.aggregate_hour(engine, at(D0, 3), now_ms=NOW) == 1
    assert metrics.aggregate_day(engine, D0, now_ms=NOW) == 1
    for period_type in ("hourly", "daily"):
        (row,) = snapshot_rows(engine, period_type).values()
        assert row["scope"] == ""
        for name in METRIC_FIELDS:
            assert row[name] == 0 and not math.isnan(row[name]), name
    summary = metrics.history(engine, "30d", now=D1)["summary"]
    assert all(summary[name] == 0 for name in METRIC_FIELDS)
    values = metrics.snapshot_values(metrics.Totals())
    assert all(v == 0 and math.isfinite(v) for v in values.values())


def test_rerunning_changes_nothing(aggregated: Engine) -> None:
    hourly, daily = snapshot_rows(aggregated, "hourly"), snapshot_rows(aggregated, "daily")
    metrics.aggregate_range(aggregated, D0, D3, "hourly", now_ms=NOW)
    metrics.aggregate_range(aggregated, D0, D3, "daily", now_ms=NOW)
    assert snapshot_rows(aggregated, "hourly") == hourly
    assert snapshot_rows(aggregated, "daily") == daily
    # a later re-run only moves created_at
    metrics.aggregate_hour(aggregated, at(D0, 10), now_ms=NOW + 1)
    again = snapshot_rows(aggregated, "hourly")
    for key, row in again.items():
        expected_created = NOW + 1 if key[1] == at(D0, 10) else NOW
        assert row == hourly[key] | {"created_at": expected_created}


def test_day_keeps_its_snapshot_when_hours_are_gone(aggregated: Engine) -> None:
    daily = snapshot_rows(aggregated, "daily")
    metrics.cleanup(aggregated, D0 + 30 * DAY, event_days=365, hourly_days=7, daily_days=365)
    assert snapshot_rows(aggregated, "hourly") == {}
    assert metrics.aggregate_day(aggregated, D0, now_ms=NOW + 5, fill_hours=False) == 0
    assert snapshot_rows(aggregated, "daily") == daily


def test_daily_p95_from_histograms_within_5_percent(engine: Engine) -> None:
    day = D0 + 5 * DAY
    events = make_traffic(400, start_ms=day, spread_ms=DAY - 10 * M, failure_rate=0.1, rng=7)
    assert not log_events(engine, events).rejected
    # the exact figures, from the raw events
    received = {
        e["artifact_id"]: e["timestamp"] for e in events if e["event_type"] == "artifact_received"
    }
    per_hour: dict[int, list[int]] = defaultdict(list)
    for e in events:
        if e["event_type"] == "artifact_completed":
            per_hour[e["timestamp"] - e["timestamp"] % H].append(
                e["timestamp"] - received[e["artifact_id"]]
            )
    latencies = sorted(v for values in per_hour.values() for v in values)
    exact_p95 = latencies[math.floor(len(latencies) * 0.95)]

    assert metrics.aggregate_day(engine, day, now_ms=day + 2 * DAY) >= 1  # fills its hours
    hourly = snapshot_rows(engine, "hourly")
    for hour, values in per_hour.items():
        row = hourly[("", hour)]
        assert row["p95_end_to_end_latency"] == sorted(values)[math.floor(len(values) * 0.95)]
        assert row["artifacts_completed"] == len(values)
    daily = snapshot_rows(engine, "daily")[("", day)]
    assert daily["artifacts_completed"] == len(latencies)
    assert daily["avg_end_to_end_latency"] == pytest.approx(sum(latencies) / len(latencies))
    assert daily["p95_end_to_end_latency"] == pytest.approx(exact_p95, rel=0.05)
    summary = metrics.history(engine, "7d", now=day + 2 * DAY)["summary"]
    assert summary["p95_end_to_end_latency"] == pytest.approx(exact_p95, rel=0.05)


# --- catch-up, concurrency --------------------------------------------------------------------


def test_five_hour_gap_is_backfilled(engine: Engine) -> None:
    # hour k of day 0 gets k + 1 artifacts received (and completed) in it
    events = []
    for k in range(8):
        for i in range(k + 1):
            events += done(
                f"G{k}_{i}", "org_a", at(D0, k, 10 + i), (1000,) * 4, 0.9, 1, 0.9, 1, 0, 1
            )
    assert not log_events(engine, events).rejected
    now = at(D0, 8, 30)  # the 08:30 run; the worker was down from 02:30 to 07:30
    for hour in (0, 1, 7):
        metrics.aggregate_hour(engine, at(D0, hour), now_ms=at(D0, hour + 1, 30))
    assert metrics.missing_hours(engine, now) == [at(D0, k) for k in range(2, 7)]
    built = metrics.catch_up_hours(engine, now)
    assert built == [at(D0, k) for k in range(2, 8)]  # the gap, and the previous hour
    assert metrics.missing_hours(engine, now) == []
    rows = snapshot_rows(engine, "hourly")
    for k in range(8):
        assert rows[("", at(D0, k))]["artifacts_received"] == k + 1
        assert rows[("org_a", at(D0, k))]["artifacts_completed"] == k + 1
    # a snapshot built before its hour ended is stale: the catch-up rebuilds it
    metrics.aggregate_hour(engine, at(D0, 3), now_ms=at(D0, 3, 59))
    assert metrics.missing_hours(engine, now) == [at(D0, 3)]
    # days: the next day's 01:30 run builds day 0 (and nothing else is missing)
    assert metrics.missing_days(engine, at(D1, 1, 30)) == [D0]
    assert metrics.catch_up_days(engine, at(D1, 1, 30)) == [D0]
    assert metrics.missing_days(engine, at(D1, 1, 30)) == []
    day = snapshot_rows(engine, "daily")[("", D0)]
    assert day["artifacts_received"] == sum(k + 1 for k in range(8))


_WORKER = """
import sys
from voicewatch.metrics import aggregate_day, aggregate_hour
from voicewatch.store import make_engine

url, hour, day, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
engine = make_engine(url)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(6):
    aggregate_hour(engine, hour, now_ms=now)
    aggregate_day(engine, day, now_ms=now, fill_hours=False)
engine.dispose()
"""


def test_two_workers_at_once_leave_one_row_per_scope(story: Engine, db_url: str) -> None:
    metrics.aggregate_range(story, D0, D1, "hourly", now_ms=NOW)
    args = [str(at(D0, 10)), str(D0), str(NOW)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, db_url, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:  # both start together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with story.connect() as conn:
        counts = conn.execute(
            select(
                snapshots_t.c.period_type,
                snapshots_t.c.scope,
                snapshots_t.c.period_start,
                func.count(),
            ).group_by(snapshots_t.c.period_type, snapshots_t.c.scope, snapshots_t.c.period_start)
        ).fetchall()
    assert all(row[3] == 1 for row in counts)
    hour_scopes = {r[1] for r in counts if r[0] == "hourly" and r[2] == at(D0, 10)}
    day_scopes = {r[1] for r in counts if r[0] == "daily"}
    assert hour_scopes == day_scopes == {"", "org_a", "org_b", "org_c"}
    assert_metrics(snapshot_rows(story, "hourly")[("", at(D0, 10))], H10)
    assert_metrics(snapshot_rows(story, "daily")[("", D0)], DAY0, p95_rel=0.05)


# --- history, breakdowns ------------------------------------------------------------------------


def test_history_reads_the_ranges(aggregated: Engine) -> None:
    day = metrics.history(aggregated, "24h", now=D1)
    assert day["period_type"] == "hourly"
    assert [s["period_start"] for s in day["snapshots"]] == [D0 + k * H for k in range(24)]
    assert all(s["organization_id"] is None for s in day["snapshots"])
    assert "latency_histogram" not in day["snapshots"][0]
    summary = day["summary"]
    assert summary["periods"] == 24
    assert_metrics(summary, DAY0, p95_rel=0.05)

    six = metrics.history(aggregated, "6h", now=at(D0, 12))
    assert [s["time_window"] for s in six["snapshots"]] == [
        f"2026-01-01-{h:02d}" for h in range(6, 12)
    ]
    assert six["summary"]["artifacts_received"] == 5
    assert six["summary"]["artifacts_completed"] == 2 + 1

    one = metrics.history(aggregated, "1h", organization_id="org_a", now=at(D0, 11, 30))
    assert [s["period_start"] for s in one["snapshots"]] == [at(D0, 10), at(D0, 11)]
    assert all(s["organization_id"] == "org_a" for s in one["snapshots"])

    month = metrics.history(aggregated, "30d", now=at(D3, 2))
    assert month["period_type"] == "daily"
    assert [s["time_window"] for s in month["snapshots"]] == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ]
    assert month["summary"]["artifacts_received"] == 6 + 3 + 2
    # sorted [9000 13000 15000 17000 22000 25000 45000][floor(7 * 0.95) = 6]
    assert month["summary"]["p95_end_to_end_latency"] == pytest.approx(45000, rel=0.05)
    week_b = metrics.history(aggregated, "7d", organization_id="org_b", now=at(D3, 2))
    assert [s["period_start"] for s in week_b["snapshots"]] == [D0, D2]
    with pytest.raises(ValueError, match="unknown range"):
        metrics.history(aggregated, "2h")


def _stage_expectations() -> dict[str, dict[str, float]]:
    # Day 0 only: A1 A2 A3 B2 complete, B1 fails in transcription, C1 in entity resolution.
    return {
        "transcription": {
            "started": 6,
            "completed": 5,
            "failed": 1,
            "failure_rate": 1 / 6,
            "avg_latency_ms": (4000 + 6000 + 5000 + 8000 + 2000) / 5,
            "p95_latency_ms": 8000,  # sorted [2000 4000 5000 6000 8000][4]
            "throughput_per_hour": 5 / 24,
            "health": "yellow",
        },
        "claims_extraction": {
            "started": 5,
            "completed": 5,
            "failed": 0,
            "failure_rate": 0,
            "avg_latency_ms": (3000 + 5000 + 4000 + 6000 + 2000) / 5,
            "p95_latency_ms": 6000,
            "throughput_per_hour": 5 / 24,
            "health": "green",
        },
        "entity_resolution": {
            "started": 5,
            "completed": 4,
            "failed": 1,
            "failure_rate": 1 / 5,
            "avg_latency_ms": (1000 + 2000 + 1000 + 2000) / 4,
            "p95_latency_ms": 2000,  # sorted [1000 1000 2000 2000][3]
            "throughput_per_hour": 4 / 24,
            "health": "yellow",
        },
        "draft_generation": {
            "started": 4,
            "completed": 4,
            "failed": 0,
            "failure_rate": 0,
            "avg_latency_ms": (2000 + 4000 + 5000 + 2000) / 4,
            "p95_latency_ms": 5000,
            "throughput_per_hour": 4 / 24,
            "health": "green",
        },
    }


def _check_stages(result: dict[str, Any]) -> None:
    expected = _stage_expectations()
    assert [s["stage"] for s in result["stages"]] == list(expected)
    for item in result["stages"]:
        want = expected[item["stage"]]
        assert item["queue_depth"] == 0
        for name, value in want.items():
            if name == "p95_latency_ms":
                assert item[name] == pytest.approx(value, rel=0.05), item["stage"]
            elif isinstance(value, str):
                assert item[name] == value, item["stage"]
            else:
                assert item[name] == pytest.approx(value, rel=1e-9), (item["stage"], name)


def test_stage_breakdown_same_from_events_and_from_snapshots(story: Engine) -> None:
    _check_stages(metrics.stage_breakdown(story, D1))  # nothing aggregated: all from events
    metrics.aggregate_range(story, D0, D1, "hourly", now_ms=NOW)
    _check_stages(metrics.stage_breakdown(story, D1))  # whole hours from snapshots
    # a window with partial hours at both ends, from snapshots and counters together
    # [09:00:05, 11:00:05): 09:00-10:00 and the 11:00 minute from the minute counters
    # (the live part is read to the minute), 10:00 from its snapshot
    partial = metrics.stage_breakdown(story, at(D0, 11, 0, 5), window_hours=2)
    by_stage = {s["stage"]: s for s in partial["stages"]}
    assert by_stage["transcription"]["started"] == 5  # A1 A2 B1 C1 A3
    assert by_stage["claims_extraction"]["started"] == 3 + 1  # + A3 at 11:00:00
    assert by_stage["claims_extraction"]["completed"] == 3 + 1  # A3's, at 11:00:06, same minute


def test_stage_health_from_queue_depth_and_failures(engine: Engine) -> None:
    now = at(D0, 12)
    events = []
    for i in range(25):  # 25 artifacts waiting in transcription
        base = {"artifact_id": f"T{i}", "organization_id": "org_a"}
        events.append(make_event("artifact_received", now - 10 * M, **base))
        events.append(make_event("transcription_started", now - 9 * M, **base))
    for i in range(3):  # 3 in claims extraction, one of which failed its drafts earlier
        base = {"artifact_id": f"K{i}", "organization_id": "org_a"}
        events.append(make_event("artifact_received", now - 10 * M, **base))
        events.append(make_event("claims_extraction_started", now - 9 * M, **base))
    events.append(make_event("draft_generation_started", now - 30 * M, artifact_id="X"))
    events.append(
        make_event(
            "artifact_failed", now - 29 * M, artifact_id="X", pipeline_stage="draft_generation"
        )
    )
    assert not log_events(engine, events).rejected

    def health(**thresholds: Any) -> dict[str, tuple[int, str]]:
        result = metrics.stage_breakdown(engine, now, **thresholds)
        return {s["stage"]: (s["queue_depth"], s["health"]) for s in result["stages"]}

    assert health() == {
        "transcription": (25, "yellow"),  # 25 > 20
        "claims_extraction": (3, "green"),
        "entity_resolution": (0, "green"),
        "draft_generation": (0, "red"),  # 1 failed of 1 started
    }
    assert health(red_queue_depth=24)["transcription"] == (25, "red")
    assert health(yellow_queue_depth=25)["transcription"] == (25, "green")
    assert health(red_failure_rate=1.0)["draft_generation"] == (0, "yellow")
    assert health(red_failure_rate=1.0, yellow_failure_rate=1.0)["draft_generation"] == (0, "green")


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_stage_breakdown_never_reads_the_event_log(story: Engine, statements: list[str]) -> None:
    """However busy the current hour, the breakdown reads snapshots and counters only.

    Nothing is aggregated here, so every figure comes from the minute counters;
    the p95 from their stage latency histograms.
    """
    breakdown = metrics.stage_breakdown(story, D1)
    assert statements, "the breakdown ran no query at all"
    assert not [s for s in statements if events_t.name in s]
    by_stage = {s["stage"]: s for s in breakdown["stages"]}
    assert by_stage["transcription"]["p95_latency_ms"] > 0
    assert by_stage["transcription"]["completed"] > 0


def test_org_breakdown_by_hand_with_one_names_query(
    aggregated: Engine, statements: list[str]
) -> None:
    with aggregated.begin() as conn:
        conn.execute(
            insert(organizations),
            [
                {"organization_id": "org_a", "name": "Alpha Club", "created_at": D0},
                {"organization_id": "org_b", "name": "Bravo RFC", "created_at": D0},
            ],
        )
    statements.clear()
    result = metrics.org_breakdown(aggregated, "7d", now=at(D3, 2))
    names_queries = [s for s in statements if re.search(r"\borganizations\b", s)]
    assert len(names_queries) == 1
    assert len(statements) <= 3  # the snapshots, the names; nothing per organization
    assert result["period_type"] == "daily"
    got = {o["organization_id"]: o for o in result["organizations"]}
    assert [o["organization_id"] for o in result["organizations"]] == ["org_a", "org_b", "org_c"]
    expected = {
        # A1 A2 A3 (day 0), A4 (day 1), A5 (day 2): all complete
        "org_a": ("Alpha Club", 5, (15000 + 22000 + 25000 + 9000 + 45000) / 5, 5 * 0.06, 0),
        # B1 fails, B2 completes (13 s), B3 fails after transcription (0.01)
        "org_b": ("Bravo RFC", 3, 13000, 0.06 + 0.01, 2 / 3),
        # C1 fails after claims (0.03), C2 completes (17 s), C3 fails in drafts (0.03)
        "org_c": ("Unknown", 3, 17000, 0.03 + 0.06 + 0.03, 2 / 3),
    }
    for org, (name, artifacts, latency, cost, failure_rate) in expected.items():
        item = got[org]
        assert item["organization_name"] == name
        assert item["artifacts"] == artifacts
        assert item["avg_latency_ms"] == pytest.approx(latency)
        assert item["total_ai_cost"] == pytest.approx(cost)
        assert item["failure_rate"] == pytest.approx(failure_rate)
    hourly = metrics.org_breakdown(aggregated, "24h", now=D1)
    assert hourly["period_type"] == "hourly"
    assert {o["organization_id"]: o["artifacts"] for o in hourly["organizations"]} == {
        "org_a": 3,
        "org_b": 2,
        "org_c": 1,
    }


# --- retention ------------------------------------------------------------------------------------


def test_cleanup_removes_exactly_what_is_older_than_the_cutoff(engine: Engine) -> None:
    now = D0 + 100 * DAY  # hour-aligned, so every cutoff is too
    event_cut, counter_cut = now - 30 * DAY, now - 2 * DAY
    hourly_cut, daily_cut = now - 7 * DAY, now - 90 * DAY
    old = [make_event("rate_limit_hit", event_cut - k, artifact_id="art_old") for k in range(1, 6)]
    kept = [
        make_event("rate_limit_hit", event_cut),  # exactly at the cutoff: stays
        make_event("rate_limit_hit", event_cut + 1),
        make_event("rate_limit_hit", counter_cut - M),  # its counter bucket is 1 min too old
        make_event("rate_limit_hit", counter_cut),  # its counter bucket is at the cutoff
    ]
    assert log_events(engine, old + kept).accepted == 9
    for hour in (hourly_cut - H, hourly_cut):
        metrics.aggregate_hour(engine, hour, now_ms=now)
    for day in (daily_cut - DAY, daily_cut):
        metrics.aggregate_day(engine, day, now_ms=now, fill_hours=False)
    with engine.connect() as conn:
        buckets = sorted(r[0] for r in conn.execute(select(counters_t.c.bucket_start)))
    # counters: (event_cut - 1 min), (event_cut, two events), (counter_cut - 1 min), counter_cut
    assert buckets == [event_cut - M, event_cut, counter_cut - M, counter_cut]

    deleted = metrics.cleanup(engine, now, batch_size=2)
    assert deleted == {"events": 5, "hourly_snapshots": 1, "daily_snapshots": 1, "counters": 3}
    with engine.connect() as conn:
        stamps = sorted(r[0] for r in conn.execute(select(events_t.c.timestamp)))
        buckets = [r[0] for r in conn.execute(select(counters_t.c.bucket_start))]
        states = [r[0] for r in conn.execute(select(states_t.c.artifact_id))]
    assert stamps == [event_cut, event_cut + 1, counter_cut - M, counter_cut]
    assert buckets == [counter_cut]
    assert states == ["art_old"]  # artifact states are kept
    assert [k[1] for k in snapshot_rows(engine, "hourly")] == [hourly_cut]
    assert [k[1] for k in snapshot_rows(engine, "daily")] == [daily_cut]
    assert metrics.cleanup(engine, now, batch_size=2) == dict.fromkeys(deleted, 0)


# --- queue depth, the one definition -------------------------------------------------------


def test_queue_depth_is_the_sum_of_the_stage_depths(engine: Engine) -> None:
    """An artifact without a tracked stage yet counts at ingestion; finished ones not at all."""
    now = at(D0, 12)
    events = [
        make_event("artifact_received", now - 5 * M, artifact_id="I", organization_id="org_a"),
        make_event("artifact_received", now - 5 * M, artifact_id="T", organization_id="org_b"),
        make_event("transcription_started", now - 4 * M, artifact_id="T", organization_id="org_b",
                   pipeline_stage="transcription"),
        make_event("artifact_received", now - 5 * M, artifact_id="D", organization_id="org_a"),
        make_event("artifact_completed", now - 1 * M, artifact_id="D", organization_id="org_a"),
    ]  # fmt: skip
    assert not log_events(engine, events).rejected
    depths = metrics.queue_depths(engine)
    assert depths.get("ingestion") == 1 and depths.get("transcription") == 1
    assert metrics.queue_depth(engine) == sum(depths.values()) == 2
    assert metrics.queue_depth(engine, "org_a") == 1
    assert metrics.queue_depths(engine, "org_b") == {"transcription": 1}
    assert metrics.realtime(engine, now=now)["active_artifacts"] == 2
    ingestion = metrics.ingestion_figures(engine, now)
    assert ingestion["queue_depth"] == 1
    assert ingestion["throughput_per_hour"] == pytest.approx(3 / 24)


def test_one_health_rule_for_every_stage() -> None:
    assert metrics.stage_health(0.0, 0) == "green"
    assert metrics.stage_health(0.10, 20) == "green"  # strictly above
    assert metrics.stage_health(0.11, 0) == "yellow"
    assert metrics.stage_health(0.0, 21) == "yellow"
    assert metrics.stage_health(0.26, 0) == "red"
    assert metrics.stage_health(0.0, 51) == "red"
    strict = metrics.HealthThresholds(yellow_queue_depth=0)
    assert metrics.stage_health(0.0, 1, strict) == "yellow"


def test_artifact_costs_are_bounded(engine: Engine) -> None:
    events = [
        make_event("transcription_completed", at(D0, 1), artifact_id="A",
                   metadata={"ai_cost": 0.25}),
        make_event("claims_extracted", at(D0, 1), artifact_id="A", metadata={"ai_cost": 0.5}),
        make_event("budget_threshold_reached", at(D0, 1), artifact_id="A",
                   metadata={"ai_cost": 9.0}),
    ]  # fmt: skip
    assert not log_events(engine, events).rejected
    assert metrics.artifact_costs(engine, ["A", "B"]) == {"A": pytest.approx(0.75)}
    assert metrics.artifact_costs(engine, []) == {}
    with pytest.raises(ValueError, match="at most"):
        metrics.artifact_costs(engine, [f"x{i}" for i in range(metrics.MAX_COST_ARTIFACTS + 1)])
