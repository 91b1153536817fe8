"""Simulated provider outages, shared by every worker through the database.

Why in the store: ``voicewatch simulate --outage`` runs in one process and the
workers that make the AI calls in others. During ``[starts_at, ends_at)`` every
call to the service fails inside its guard (``providers.GuardedCall``), so the
circuit breaker sees a real run of failures, opens, and closes on the first
good probe after the outage, exactly as with a real provider.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from voicewatch.pipeline.guard import dialect_insert
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import simulated_outages as outages_t


def start_outage(engine: Engine, service: str, starts_at: int, duration_ms: int) -> int:
    """Make ``service`` fail for ``duration_ms`` from ``starts_at``; returns when it ends."""
    if duration_ms <= 0:
        raise ValueError("an outage lasts a positive number of ms")
    ends_at = starts_at + duration_ms
    with write_transaction(engine) as conn:
        conn.execute(
            dialect_insert(conn, outages_t)
            .values(service=service, starts_at=starts_at, ends_at=ends_at)
            .on_conflict_do_update(
                index_elements=["service"], set_={"starts_at": starts_at, "ends_at": ends_at}
            )
        )
    return ends_at


def in_outage(engine: Engine, service: str, now_ms: int) -> bool:
    """Is a simulated outage of ``service`` under way at ``now_ms``?"""
    o = outages_t.c
    with read_connection(engine) as conn:
        found = conn.execute(
            select(o.service).where(o.service == service, o.starts_at <= now_ms, o.ends_at > now_ms)
        ).first()
    return found is not None
