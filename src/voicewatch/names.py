"""Display names of organizations and coaches: the one lookup every read model uses.

Why one: a page of rows (artifacts, events, alerts, the per-organization
table) shows names, and each of them fetched them with its own copy of the
same query. Here a page's names cost one ``IN (...)`` query per kind, never
one per row, and an id without a row is simply absent (each caller says
what it shows instead: the id, "Unknown", a dash).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Engine, select

from voicewatch.store import read_connection
from voicewatch.store.tables import organizations, users


def organization_names(conn: Connection, organization_ids: Iterable[str | None]) -> dict[str, str]:
    """``{organization_id: name}`` of the given ids that exist, in one query (none if no ids)."""
    ids = sorted({i for i in organization_ids if i})
    if not ids:
        return {}
    query = select(organizations.c.organization_id, organizations.c.name).where(
        organizations.c.organization_id.in_(ids)
    )
    return {str(r[0]): str(r[1]) for r in conn.execute(query)}


def coach_names(conn: Connection, user_ids: Iterable[str | None]) -> dict[str, str]:
    """``{user_id: name}`` of the given users that exist and have a name, in one query."""
    ids = sorted({i for i in user_ids if i})
    if not ids:
        return {}
    query = select(users.c.user_id, users.c.name).where(users.c.user_id.in_(ids))
    return {str(r[0]): str(r[1]) for r in conn.execute(query) if r[1]}


def names(
    engine: Engine, organization_ids: Iterable[str | None], user_ids: Iterable[str | None]
) -> tuple[dict[str, str], dict[str, str]]:
    """(organization names, coach names) for a page of rows, in one read transaction."""
    with read_connection(engine) as conn:
        return organization_names(conn, organization_ids), coach_names(conn, user_ids)


def organization_choices(engine: Engine) -> list[dict[str, str]]:
    """Every organization as ``{"id", "name"}``, by name, for the filter dropdowns."""
    query = select(organizations.c.organization_id, organizations.c.name).order_by(
        organizations.c.name, organizations.c.organization_id
    )
    with read_connection(engine) as conn:
        return [{"id": r[0], "name": r[1]} for r in conn.execute(query)]


def short_name(name: str) -> str:
    """A person's name for a tight column: "Jim Murphy" -> "J. Murphy".

    The first word becomes its initial and the rest stays ("Seán Ó Briain" ->
    "S. Ó Briain"); a one-word name, or an id used as a name, stays whole.
    """
    words = name.split()
    if len(words) < 2 or not words[0][:1].isalpha():
        return name.strip()
    return f"{words[0][0].upper()}. {' '.join(words[1:])}"


def coach_labels(conn: Connection, user_ids: Iterable[str | None]) -> dict[str, dict[str, str]]:
    """``{user_id: {"id", "name", "short"}}`` for a page of rows, in one query.

    Every given id gets a label: one without a named row shows its id (the
    pipeline creates coaches on their first note, before anyone names them).
    """
    ids = sorted({i for i in user_ids if i})
    found = coach_names(conn, ids)
    out = {}
    for user_id in ids:
        name = found.get(user_id, user_id)
        out[user_id] = {"id": user_id, "name": name, "short": short_name(name)}
    return out
