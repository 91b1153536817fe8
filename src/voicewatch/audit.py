"""The audit log: who changed what, from what to what, and when.

Why: staff actions that change how the pipeline behaves (a budget, a rate
limit, a circuit forced closed; later, staff acting on a coach's behalf) must be
traceable. One general table, written by the service function that makes the
change, in the same call, so no route can forget it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import audit_log as audit_t

ACTOR_MAX_LEN = 320
TARGET_MAX_LEN = 200


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def record(
    bind: Engine | Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
    at_ms: int,
) -> None:
    """Append one entry; ``before``/``after`` are any JSON-able values (None: none)."""
    values = {
        "actor": (actor or "unknown")[:ACTOR_MAX_LEN],
        "action": action[:64],
        "target": target[:TARGET_MAX_LEN],
        "before": _json(before),
        "after": _json(after),
        "at_ms": at_ms,
    }
    if isinstance(bind, Connection):
        bind.execute(insert(audit_t).values(**values))
        return
    with write_transaction(bind) as conn:
        conn.execute(insert(audit_t).values(**values))


def entries(
    engine: Engine, *, target: str | None = None, action_prefix: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest first; ``before``/``after`` decoded from JSON."""
    query = select(audit_t).order_by(audit_t.c.at_ms.desc(), audit_t.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(audit_t.c.target == target)
    if action_prefix is not None:
        query = query.where(audit_t.c.action.startswith(action_prefix))
    with read_connection(engine) as conn:
        rows = conn.execute(query).all()
    return [
        {
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "before": json.loads(r.before) if r.before is not None else None,
            "after": json.loads(r.after) if r.after is not None else None,
            "at_ms": r.at_ms,
        }
        for r in rows
    ]
