"""The harness's and the pipeline's tables (organizations to job runs); see ``tables``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from voicewatch.store.tables.meta import ID, metadata

# --- Organizations, people and rosters -------------------------------------

organizations = Table(
    "organizations",
    metadata,
    Column("organization_id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("email", String(320), unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("role", String(32), nullable=False),  # staff | coach
    Column("organization_id", ID),  # coaches belong to one organization
    Column("password_hash", String(200)),
    Column("created_at", BigInteger, nullable=False),
    #: bumped to end every session of the user at once (sign-out, new password)
    Column("session_generation", Integer, nullable=False, server_default="0"),
)

players = Table(
    "players",
    metadata,
    Column("player_id", ID, primary_key=True),
    Column("organization_id", ID, nullable=False),
    Column("name", String(200), nullable=False),
    Column("team", String(200), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("organization_id", "name", "team", name="uq_players_org_name_team"),
)

coach_player_aliases = Table(
    "coach_player_aliases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("coach_user_id", ID, nullable=False),
    Column("organization_id", ID, nullable=False),
    Column("raw_text", String(200), nullable=False),
    Column("resolved_entity_id", ID, nullable=False),
    Column("entity_type", String(16), nullable=False, server_default="player"),
    Column("use_count", Integer, nullable=False, server_default="1"),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=False),
    UniqueConstraint(
        "coach_user_id", "organization_id", "raw_text", name="uq_aliases_coach_org_raw"
    ),
)

# --- The pipeline's own records ---------------------------------------------

voice_note_artifacts = Table(
    "voice_note_artifacts",
    metadata,
    Column("artifact_id", ID, primary_key=True),
    Column("voice_note_id", ID),
    Column("organization_id", ID, nullable=False),
    Column("coach_user_id", ID, nullable=False),
    Column("source_channel", String(32), nullable=False),  # whatsapp | app
    Column("kind", String(16), nullable=False),  # audio | text
    Column("text", Text),
    Column("audio_path", String(500)),
    Column("status", String(32), nullable=False),
    Column("current_stage", String(32)),  # the stage running or last run
    Column("completed_stage", String(32)),  # the last stage finished in this attempt
    Column("error_message", Text),
    Column("error_code", String(128)),
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("fail_plan", String(32)),  # simulation only: fail once at this stage
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger),
    Index("ix_artifacts_status_created", "status", "created_at"),
    Index("ix_artifacts_org_created", "organization_id", "created_at"),
    Index("ix_artifacts_coach_created", "coach_user_id", "created_at"),
    Index("ix_artifacts_created", "created_at"),
)

voice_note_transcripts = Table(
    "voice_note_transcripts",
    metadata,
    Column("artifact_id", ID, primary_key=True),
    Column("full_text", Text, nullable=False),
    Column("segments", Text, nullable=False, server_default="[]"),  # JSON list
    Column("duration_seconds", Float),
    Column("word_count", Integer, nullable=False, server_default="0"),
    Column("confidence", Float),
    Column("model_used", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

voice_note_claims = Table(
    "voice_note_claims",
    metadata,
    Column("claim_id", ID, primary_key=True),
    Column("artifact_id", ID, nullable=False),
    Column("organization_id", ID, nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("topic", String(64), nullable=False),
    Column("source_text", Text, nullable=False),
    Column("mentioned_names", Text, nullable=False, server_default="[]"),  # JSON list
    Column("extraction_confidence", Float, nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("artifact_id", "ordinal", name="uq_claims_artifact_ordinal"),
    Index("ix_claims_artifact_status", "artifact_id", "status"),
    Index("ix_claims_org_status", "organization_id", "status"),
)

voice_note_entity_resolutions = Table(
    "voice_note_entity_resolutions",
    metadata,
    Column("resolution_id", ID, primary_key=True),
    Column("claim_id", ID, nullable=False),
    Column("artifact_id", ID, nullable=False),
    Column("organization_id", ID, nullable=False),
    Column("raw_text", String(200), nullable=False),
    Column("candidates", Text, nullable=False, server_default="[]"),  # JSON ranked list
    Column("resolved_entity_id", ID),
    Column("resolved_entity_type", String(16)),
    Column("score", Float),
    Column("status", String(32), nullable=False),
    Column("resolved_by", ID),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("claim_id", "raw_text", name="uq_resolutions_claim_raw"),
    Index("ix_resolutions_artifact_status", "artifact_id", "status"),
    Index("ix_resolutions_org_status", "organization_id", "status"),
)

insight_drafts = Table(
    "insight_drafts",
    metadata,
    Column("draft_id", ID, primary_key=True),
    Column("artifact_id", ID, nullable=False),
    Column("claim_id", ID, nullable=False, unique=True),
    Column("organization_id", ID, nullable=False),
    Column("player_id", ID),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("ai_confidence", Float, nullable=False),
    Column("status", String(32), nullable=False),
    Column("decided_by", ID),
    Column("decided_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_drafts_artifact_status", "artifact_id", "status"),
)

# --- AI service guard rails --------------------------------------------------

ai_service_health = Table(
    "ai_service_health",
    metadata,
    Column("service", String(64), primary_key=True),  # e.g. transcription, claims
    Column("status", String(16), nullable=False),  # healthy | degraded | down
    Column("circuit_breaker_state", String(16), nullable=False),  # closed | open | half_open
    Column("recent_failure_count", Integer, nullable=False, server_default="0"),
    Column("last_failure_at", BigInteger),
    Column("last_success_at", BigInteger),
    Column("opened_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

ai_usage_log = Table(
    "ai_usage_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("organization_id", ID, nullable=False),
    Column("artifact_id", ID),
    Column("operation", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("audio_seconds", Float, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_ai_usage_org_created", "organization_id", "created_at"),
)

org_cost_budgets = Table(
    "org_cost_budgets",
    metadata,
    Column("organization_id", ID, primary_key=True),
    Column("daily_budget_usd", Float, nullable=False),
    Column("alert_threshold", Float, nullable=False, server_default="0.8"),
    Column("current_day", String(10), nullable=False, server_default=""),  # YYYY-MM-DD UTC
    Column("current_daily_spend", Float, nullable=False, server_default="0"),
    Column("threshold_notified", Boolean, nullable=False, server_default="0"),
    Column("exceeded_notified", Boolean, nullable=False, server_default="0"),
    Column("updated_at", BigInteger, nullable=False),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("scope", String(160), primary_key=True),  # e.g. org:<id>, login:<ip>
    Column("limit_type", String(64), primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("window_ms", BigInteger, nullable=False),
    Column("max_count", Integer, nullable=False),
    Column("current_count", Integer, nullable=False, server_default="0"),
)

# --- The harness --------------------------------------------------------------

voice_pipeline_events = Table(
    "voice_pipeline_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("event_id", ID, nullable=False, unique=True),
    Column("event_type", String(40), nullable=False),
    Column("artifact_id", ID),
    Column("voice_note_id", ID),
    Column("organization_id", ID),
    Column("coach_user_id", ID),
    Column("pipeline_stage", String(32)),
    Column("stage_started_at", BigInteger),
    Column("stage_completed_at", BigInteger),
    Column("duration_ms", Float),
    Column("previous_status", String(64)),
    Column("new_status", String(64)),
    Column("error_message", Text),
    Column("error_code", String(128)),
    # metadata, flattened: every key is known, so aggregation stays plain SQL
    Column("claim_count", Integer),
    Column("entity_count", Integer),
    Column("disambiguation_count", Integer),
    Column("draft_count", Integer),
    Column("confidence_score", Float),
    Column("transcript_duration", Float),
    Column("transcript_word_count", Integer),
    Column("ai_model", String(128)),
    Column("ai_cost", Float),
    Column("retry_attempt", Integer),
    Column("timestamp", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Index("ix_events_timestamp", "timestamp"),
    Index("ix_events_type_timestamp", "event_type", "timestamp"),
    Index("ix_events_org_timestamp", "organization_id", "timestamp"),
    Index("ix_events_stage_timestamp", "pipeline_stage", "timestamp"),
    Index("ix_events_artifact_timestamp", "artifact_id", "timestamp"),
)

#: Minute buckets of live figures. ``scope`` is PLATFORM or an organization id;
#: ``pipeline_stage`` is "" when the events had none. ``count`` counts events,
#: ``total`` sums the counter's quantity (durations in ms, or cost in USD).
voice_pipeline_counters = Table(
    "voice_pipeline_counters",
    metadata,
    Column("scope", ID, primary_key=True),
    Column("bucket_start", BigInteger, primary_key=True),
    Column("counter_type", String(48), primary_key=True),
    Column("pipeline_stage", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("total", Float, nullable=False),
)

#: Where each artifact stands as told by its events alone, so that "in flight"
#: and "failed" are index look-ups, and end-to-end latency needs no event scan.
voice_pipeline_artifact_states = Table(
    "voice_pipeline_artifact_states",
    metadata,
    Column("artifact_id", ID, primary_key=True),
    Column("organization_id", ID),
    Column("coach_user_id", ID),
    Column("state", String(16), nullable=False),  # in_flight | completed | failed
    Column("current_stage", String(32)),
    Column("last_event_type", String(40), nullable=False),
    Column("error_message", Text),
    Column("received_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_artifact_states_state_updated", "state", "updated_at"),
)

voice_pipeline_metrics_snapshots = Table(
    "voice_pipeline_metrics_snapshots",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("period_type", String(8), nullable=False),  # hourly | daily
    Column("scope", ID, nullable=False),  # PLATFORM or an organization id
    Column("period_start", BigInteger, nullable=False),
    Column("period_end", BigInteger, nullable=False),
    Column("time_window", String(13), nullable=False),  # YYYY-MM-DD-HH or YYYY-MM-DD
    Column("artifacts_received", Integer, nullable=False),
    Column("artifacts_completed", Integer, nullable=False),
    Column("artifacts_failed", Integer, nullable=False),
    Column("avg_transcription_latency", Float, nullable=False),
    Column("avg_claims_extraction_latency", Float, nullable=False),
    Column("avg_entity_resolution_latency", Float, nullable=False),
    Column("avg_draft_generation_latency", Float, nullable=False),
    Column("avg_end_to_end_latency", Float, nullable=False),
    Column("p95_end_to_end_latency", Float, nullable=False),
    Column("avg_transcript_confidence", Float, nullable=False),
    Column("avg_claim_confidence", Float, nullable=False),
    Column("auto_resolution_rate", Float, nullable=False),
    Column("disambiguation_rate", Float, nullable=False),
    Column("transcription_failure_rate", Float, nullable=False),
    Column("claims_extraction_failure_rate", Float, nullable=False),
    Column("entity_resolution_failure_rate", Float, nullable=False),
    Column("overall_failure_rate", Float, nullable=False),
    Column("total_claims_extracted", Integer, nullable=False),
    Column("total_entities_resolved", Integer, nullable=False),
    Column("total_drafts_generated", Integer, nullable=False),
    Column("total_ai_cost", Float, nullable=False),
    Column("avg_cost_per_artifact", Float, nullable=False),
    # the counts behind the averages, so daily roll-ups can weight them
    Column("weights", Text, nullable=False, server_default="{}"),  # JSON
    # mergeable end-to-end latency histogram (JSON), for percentiles over ranges
    Column("latency_histogram", Text, nullable=False, server_default="{}"),
    Column("created_at", BigInteger, nullable=False),
    # the coach loop's figures (metrics.decisions), JSON; migration 0004
    Column("decision_metrics", Text, nullable=False, server_default="{}"),
    UniqueConstraint("period_type", "scope", "period_start", name="uq_snapshots_period_scope"),
    Index("ix_snapshots_type_start", "period_type", "period_start"),
)

voice_pipeline_alerts = Table(
    "voice_pipeline_alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("alert_kind", String(48), nullable=False),
    Column("scope", ID, nullable=False),  # PLATFORM, an organization id, or a stage
    Column("severity", String(16), nullable=False),  # warning | critical | info
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=False, server_default="{}"),  # JSON
    Column("state", String(16), nullable=False),  # active | resolved
    # "1" while active, NULL once resolved: the unique key allows one active
    # alert per kind and scope and any number of resolved ones.
    Column("active_key", String(1)),
    Column("raised_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
    Column("acknowledged_by", String(320)),
    Column("acknowledged_at", BigInteger),
    UniqueConstraint("alert_kind", "scope", "active_key", name="uq_alerts_one_active"),
    Index("ix_alerts_state_raised", "state", "raised_at"),
)

retry_attempts = Table(
    "retry_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("artifact_id", ID, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("stage", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # running | succeeded | failed
    Column("requested_by", String(320), nullable=False),
    Column("error_message", Text),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    UniqueConstraint("artifact_id", "attempt", name="uq_retry_artifact_attempt"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(16), nullable=False),  # ingest | staff | coach
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger),
    Column("revoked_at", BigInteger),
    Column("coach_user_id", ID),  # coach tokens only: the one coach it acts as (0004)
)

#: Used by the periodic jobs: one row per job run key, so that with several
#: workers each run happens once.
job_runs = Table(
    "job_runs",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("run_key", String(32), primary_key=True),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("worker", String(200), nullable=False, server_default=""),
)
