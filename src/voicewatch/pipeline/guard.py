"""What the four guard rails around every AI call share.

The guard rails themselves live one concept per module: ``breaker`` (circuit
breaker per AI service), ``costs`` (price table and the AI usage log),
``budgets`` (per-organization daily budgets) and ``ratelimit`` (fixed-window
rate limits). This module holds the little they have in common:

* ``Emit``: the pipeline reaches the harness only through an emitter, so a guard
  rail that must report a system event is *given* a callable
  ``emit(event_type, **fields)`` instead of importing the event log.
* ``notify``: calls that emitter and swallows whatever it raises, because a
  failure of monitoring must never fail (or change) the AI call it watches.
* ``insert_if_absent``: "make sure this row exists" in one statement that two
  processes may run at once (``INSERT ... ON CONFLICT DO NOTHING`` on both
  databases), so every state change can then lock the row it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from voicewatch import model

log = logging.getLogger(__name__)

#: ``emit(event_type, **fields)``; fields as in DESIGN.md "The event".
Emit = Callable[..., Any]


def notify(emit: Emit | None, event_type: str, **fields: Any) -> None:
    """Send one system event through ``emit``; never raise.

    ``None`` fields are left out (the event schema has no use for them), and an
    ``error_message`` is cut to the event log's limit so that a long provider
    error cannot get the whole event rejected.
    """
    if emit is None:
        return
    clean = {k: v for k, v in fields.items() if v is not None}
    message = clean.get("error_message")
    if isinstance(message, str) and len(message) > model.ERROR_MESSAGE_MAX_LEN:
        clean["error_message"] = message[: model.ERROR_MESSAGE_MAX_LEN - 1] + "…"
    try:
        emit(event_type, **clean)
    except Exception:  # monitoring must never fail the call it watches
        log.exception("emitting %s failed; the event is lost", event_type)


def insert_if_absent(
    conn: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]
) -> None:
    """Insert ``values`` into ``table`` unless a row with the same ``keys`` exists.

    Safe when two transactions do it at once: the loser's insert is a no-op,
    not an integrity error, on SQLite and PostgreSQL alike.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt)


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's ``insert(table)``, which offers ``on_conflict_do_update``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def usd(amount: float) -> str:
    """Money for messages: cents, or four decimals below one cent (AI calls are cheap)."""
    if 0 < abs(amount) < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"
