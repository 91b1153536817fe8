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

from typing import Any

from sqlalchemy import Engine, case, delete, select

from voicewatch.pipeline.guard import Emit, dialect_insert, notify
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import rate_limit_overrides as overrides_t
from voicewatch.store.tables import rate_limits as limits_t

ORG_PREFIX = "org:"
#: ``limit_type`` of the AI-call limits: ``ai_calls:<service>``.
AI_CALLS_PREFIX = "ai_calls:"
#: In an override, stands for every organization or every service.
ANY = "*"
MINUTE_MS = 60_000


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


# --- configurable limits (overrides of the default) --------------------------------


def ai_limit_type(service: str) -> str:
    """The ``limit_type`` under which the AI calls to ``service`` are counted."""
    return AI_CALLS_PREFIX + service


def limit_for(engine: Engine, organization_id: str, service: str, default: int) -> int:
    """AI calls per minute allowed to ``organization_id`` on ``service``.

    The most specific override wins: (organization, service), then
    (organization, any service), then (any organization, service), then
    (any, any), then ``default`` (the ``VOICEWATCH_RATE_LIMIT_PER_MINUTE`` setting).
    """
    o = overrides_t.c
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(o.organization_id, o.service, o.max_per_minute).where(
                o.organization_id.in_([organization_id, ANY]), o.service.in_([service, ANY])
            )
        ).all()
    found = {(r.organization_id, r.service): int(r.max_per_minute) for r in rows}
    for key in ((organization_id, service), (organization_id, ANY), (ANY, service), (ANY, ANY)):
        if key in found:
            return found[key]
    return default


def get_override(engine: Engine, organization_id: str, service: str) -> int | None:
    """The override stored for exactly ``(organization_id, service)``, if any."""
    o = overrides_t.c
    with read_connection(engine) as conn:
        value = conn.execute(
            select(o.max_per_minute).where(
                o.organization_id == organization_id, o.service == service
            )
        ).scalar()
    return None if value is None else int(value)


def set_override(
    engine: Engine, organization_id: str, service: str, max_per_minute: int, now_ms: int
) -> None:
    """Store (or replace) the limit of ``(organization_id, service)``; 0 stops every call."""
    if max_per_minute < 0:
        raise ValueError("max_per_minute must not be negative")
    if not organization_id or not service or len(service) > 64:
        raise ValueError("organization and service are required (service: at most 64 characters)")
    with write_transaction(engine) as conn:
        insert = dialect_insert(conn, overrides_t).values(
            organization_id=organization_id,
            service=service,
            max_per_minute=max_per_minute,
            updated_at=now_ms,
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["organization_id", "service"],
                set_={"max_per_minute": max_per_minute, "updated_at": now_ms},
            )
        )


def remove_override(engine: Engine, organization_id: str, service: str) -> bool:
    """Drop an override (the default applies again); True if there was one."""
    o = overrides_t.c
    with write_transaction(engine) as conn:
        result = conn.execute(
            delete(overrides_t).where(o.organization_id == organization_id, o.service == service)
        )
    return bool(result.rowcount)


def list_overrides(engine: Engine) -> list[dict[str, Any]]:
    """Every stored override, by organization and service."""
    o = overrides_t.c
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(o.organization_id, o.service, o.max_per_minute, o.updated_at).order_by(
                o.organization_id, o.service
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def windows(engine: Engine, now_ms: int) -> list[dict[str, Any]]:
    """Every counted limit with the count of the window holding ``now_ms``.

    A stored window that has passed counts as 0: nothing was counted in the
    current window yet. ``count`` includes refused calls, so it may exceed
    ``max_count``; ``refused`` says how many were refused.
    """
    c = limits_t.c
    with read_connection(engine) as conn:
        rows = conn.execute(select(limits_t).order_by(c.scope, c.limit_type)).all()
    out = []
    for r in rows:
        current = window_start(now_ms, r.window_ms) == r.window_start
        count = int(r.current_count) if current else 0
        out.append(
            {
                "scope": r.scope,
                "limit_type": r.limit_type,
                "window_start": window_start(now_ms, r.window_ms),
                "window_ms": int(r.window_ms),
                "max_count": int(r.max_count),
                "count": count,
                "refused": max(0, count - int(r.max_count)),
            }
        )
    return out
