"""Fixed-window rate limits shared by every worker through the database.

Why: a provider's own rate limit, or a fair share between organizations, must
hold across all workers, so the count lives in ``rate_limits`` (one row per
scope and limit type) rather than in a process.

Windows are fixed and aligned to the epoch: with ``window_ms = 60_000`` a
window is one UTC minute, ``[k*60000, (k+1)*60000)``. ``hit`` counts one call
in the window holding ``now_ms`` and says whether it may go ahead: at most
``max_count`` calls per window do.

Each ``hit`` is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``
statement, so two processes cannot both take the last slot: the database
applies the increments one after the other (PostgreSQL locks the row, SQLite
serialises writers). Refused calls are counted too (the count then exceeds
``max_count``), which is how the first refusal of a window is recognised:
``rate_limit_hit`` is emitted once per scope, limit type and window, not once
per refused call, so a caller stuck in a loop cannot flood the event log.

A worker whose clock lags behind the stored window counts into the stored
(newer) window instead of resetting it.
"""

from __future__ import annotations

from sqlalchemy import Engine, case

from voicewatch.pipeline.guard import Emit, dialect_insert, notify
from voicewatch.store import write_transaction
from voicewatch.store.tables import rate_limits as limits_t

ORG_PREFIX = "org:"


def org_scope(organization_id: str) -> str:
    """The scope name of an organization's limits; ``hit`` reports its organization_id."""
    return ORG_PREFIX + organization_id


def window_start(now_ms: int, window_ms: int) -> int:
    """Start (epoch ms) of the fixed window of length ``window_ms`` holding ``now_ms``."""
    return now_ms - now_ms % window_ms


def hit(
    engine: Engine,
    scope: str,
    limit_type: str,
    max_count: int,
    window_ms: int,
    now_ms: int,
    emit: Emit | None = None,
) -> bool:
    """Count one call against ``(scope, limit_type)``; True if it is within the limit.

    ``scope`` is e.g. ``org_scope("org_1")`` or ``"service:transcription"``;
    ``limit_type`` names the limit (``"ai_calls_per_minute"``). On the first
    refusal of a window ``emit`` receives ``rate_limit_hit``, with
    ``organization_id`` when the scope is an organization.
    """
    if window_ms <= 0:
        raise ValueError("window_ms must be positive")
    if max_count < 0:
        raise ValueError("max_count must not be negative")
    start = window_start(now_ms, window_ms)
    with write_transaction(engine) as conn:
        insert = dialect_insert(conn, limits_t).values(
            scope=scope,
            limit_type=limit_type,
            window_start=start,
            window_ms=window_ms,
            max_count=max_count,
            current_count=1,
        )
        newer_window = limits_t.c.window_start < insert.excluded.window_start
        stmt = insert.on_conflict_do_update(
            index_elements=["scope", "limit_type"],
            set_={
                # every right-hand side reads the row as it was before the update
                "current_count": case((newer_window, 1), else_=limits_t.c.current_count + 1),
                "window_start": case(
                    (newer_window, insert.excluded.window_start), else_=limits_t.c.window_start
                ),
                "window_ms": insert.excluded.window_ms,
                "max_count": insert.excluded.max_count,
            },
        ).returning(limits_t.c.current_count)
        count = conn.execute(stmt).scalar_one()
    if count <= max_count:
        return True
    if count == max_count + 1:
        org = scope[len(ORG_PREFIX) :] if scope.startswith(ORG_PREFIX) else ""
        notify(
            emit,
            "rate_limit_hit",
            organization_id=org or None,
            error_message=(
                f"rate limit {limit_type} for {scope}: at most {max_count} calls per {window_ms} ms"
            ),
            error_code="rate_limited",
            timestamp=now_ms,
        )
    return False
