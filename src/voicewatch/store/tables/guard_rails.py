"""The guard rails' tables (issue 13; migration 0003): audit log, overrides, deferrals, outages."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from voicewatch.store.tables.meta import ID, metadata

# --- Guard rails (issue 13; migration 0003) -------------------------------------------

#: Who changed what, from what to what: every staff action on the guard rails
#: (budgets, rate limits, a circuit reset), and later staff acting on a coach's
#: behalf. ``before`` / ``after`` are JSON text (``null`` when there was none).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("actor", String(320), nullable=False),  # staff email or "token:<name>" or "cli"
    Column("action", String(64), nullable=False),  # e.g. budget.set, breaker.reset
    Column("target", String(200), nullable=False),  # e.g. org_clg, service:claims
    Column("before", Text),
    Column("after", Text),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_audit_log_target_at", "target", "at_ms"),
    Index("ix_audit_log_at", "at_ms"),
)

#: Per-organization (and per-service) rate limits that replace the default
#: ``VOICEWATCH_RATE_LIMIT_PER_MINUTE``. ``service`` "*" covers every AI service
#: of the organization; organization "*" sets a platform-wide default.
rate_limit_overrides = Table(
    "rate_limit_overrides",
    metadata,
    Column("organization_id", ID, primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("max_per_minute", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

#: A stage put off by a rate limit: when it was first deferred and until when,
#: so a note that stays limited past the horizon fails instead of waiting forever.
stage_deferrals = Table(
    "stage_deferrals",
    metadata,
    Column("artifact_id", ID, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("first_deferred_at", BigInteger, nullable=False),
    Column("deferred_until", BigInteger, nullable=False),
    Column("deferrals", Integer, nullable=False),
)

#: A simulated provider outage (``voicewatch simulate --outage``, the demo): every
#: call to ``service`` in ``[starts_at, ends_at)`` fails inside its guard.
simulated_outages = Table(
    "simulated_outages",
    metadata,
    Column("service", String(64), primary_key=True),
    Column("starts_at", BigInteger, nullable=False),
    Column("ends_at", BigInteger, nullable=False),
)

# --- end of the guard-rail block --------------------------------------------------------
