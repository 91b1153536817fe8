"""Every table of voicewatch, as SQLAlchemy Core metadata (one module per area).

Times are UTC epoch milliseconds (BigInteger). Platform-wide rows (counters,
snapshots, alerts) use the empty string as their scope instead of NULL:
SQL treats NULLs as distinct, so a unique key over a NULL organization would
let two "platform" rows coexist. ``PLATFORM`` names that empty scope.

The Alembic migrations in ``store/migrations`` create these tables; a test
checks that the migrated schema and this metadata agree.
"""

from __future__ import annotations

from voicewatch.store.tables.coach_loop import (
    coach_decisions,
    coach_threshold_changes,
    coach_thresholds,
    voice_note_insights,
)
from voicewatch.store.tables.core import (
    ai_service_health,
    ai_usage_log,
    api_tokens,
    coach_player_aliases,
    insight_drafts,
    job_runs,
    org_cost_budgets,
    organizations,
    players,
    rate_limits,
    retry_attempts,
    users,
    voice_note_artifacts,
    voice_note_claims,
    voice_note_entity_resolutions,
    voice_note_transcripts,
    voice_pipeline_alerts,
    voice_pipeline_artifact_states,
    voice_pipeline_counters,
    voice_pipeline_events,
    voice_pipeline_metrics_snapshots,
)
from voicewatch.store.tables.guard_rails import (
    audit_log,
    rate_limit_overrides,
    simulated_outages,
    stage_deferrals,
)
from voicewatch.store.tables.meta import ID, PLATFORM, metadata

__all__ = [
    "ID",
    "PLATFORM",
    "ai_service_health",
    "ai_usage_log",
    "api_tokens",
    "audit_log",
    "coach_decisions",
    "coach_player_aliases",
    "coach_threshold_changes",
    "coach_thresholds",
    "insight_drafts",
    "job_runs",
    "metadata",
    "org_cost_budgets",
    "organizations",
    "players",
    "rate_limit_overrides",
    "rate_limits",
    "retry_attempts",
    "simulated_outages",
    "stage_deferrals",
    "users",
    "voice_note_artifacts",
    "voice_note_claims",
    "voice_note_entity_resolutions",
    "voice_note_insights",
    "voice_note_transcripts",
    "voice_pipeline_alerts",
    "voice_pipeline_artifact_states",
    "voice_pipeline_counters",
    "voice_pipeline_events",
    "voice_pipeline_metrics_snapshots",
]
