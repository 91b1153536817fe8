"""The clubs behind the notes: organizations, coaches, rosters and name aliases.

Rosters come in as CSV (re-import updates, never duplicates); the ids of
players and teams are derived from the club and the name, so an import run
twice leaves what one run leaves. Read by intake (is the club known?) and by
entity resolution (whom can a name mean?).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from voicewatch.clock import now_ms
from voicewatch.pipeline.resolution import RosterEntry
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import (
    coach_player_aliases,
    organizations,
    players,
    users,
)

SOURCE_CHANNELS = ("whatsapp", "app")


class RecordError(ValueError):
    """A request about the pipeline's records cannot be met (unknown org, bad roster...)."""


# --- organizations and people ---------------------------------------------------------


def upsert_organization(engine: Engine, organization_id: str, name: str) -> bool:
    """Add an organization, or rename it if it exists; returns True when it was new."""
    organization_id, name = organization_id.strip(), name.strip()
    if not organization_id or not name:
        raise RecordError("an organization needs an id and a name")
    if len(organization_id) > 128 or len(name) > 200:
        raise RecordError("organization id or name is too long")
    with write_transaction(engine) as conn:
        found = conn.execute(
            select(organizations.c.organization_id).where(
                organizations.c.organization_id == organization_id
            )
        ).first()
        if found:
            conn.execute(
                update(organizations)
                .where(organizations.c.organization_id == organization_id)
                .values(name=name)
            )
            return False
        conn.execute(
            organizations.insert().values(
                organization_id=organization_id, name=name, created_at=now_ms()
            )
        )
        return True


def organization_exists(engine: Engine, organization_id: str) -> bool:
    with read_connection(engine) as conn:
        return (
            conn.execute(
                select(organizations.c.organization_id).where(
                    organizations.c.organization_id == organization_id
                )
            ).first()
            is not None
        )


def ensure_coach(engine: Engine, coach_user_id: str, organization_id: str, name: str = "") -> None:
    """Make sure a coach exists (coaches are created on first note).

    An insert that ignores a conflict, not "select, then insert": a coach's
    first notes may arrive together at two servers (PostgreSQL runs both
    transactions at once; the loser of a select-then-insert got a 500).
    """
    with write_transaction(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(users)
            .values(
                user_id=coach_user_id,
                name=name or coach_user_id,
                role="coach",
                organization_id=organization_id,
                created_at=now_ms(),
            )
            .on_conflict_do_nothing(index_elements=["user_id"])
        )


# --- rosters ---------------------------------------------------------------------------


@dataclass
class RosterReport:
    added: int = 0
    updated: int = 0
    aliases: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def player_id_for(organization_id: str, name: str, team: str) -> str:
    """A stable player id, so that re-importing a roster updates instead of duplicating."""
    return (
        "pl_"
        + uuid.uuid5(uuid.NAMESPACE_URL, f"{organization_id}|{name.lower()}|{team.lower()}").hex[
            :16
        ]
    )


def team_id_for(organization_id: str, team: str) -> str:
    return "tm_" + uuid.uuid5(uuid.NAMESPACE_URL, f"{organization_id}|team|{team.lower()}").hex[:16]


def import_roster(engine: Engine, organization_id: str, source: Path | str) -> RosterReport:
    """Load a roster CSV (columns ``name``, ``team``, optional ``aliases`` split by ``|``).

    Bad rows are reported by line number and skipped; good rows land. Importing
    the same file twice changes nothing.
    """
    if not organization_exists(engine, organization_id):
        raise RecordError(f"unknown organization: {organization_id} (create it first)")
    text = source.read_text(encoding="utf-8-sig") if isinstance(source, Path) else source
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "name" not in fields or "team" not in fields:
        raise RecordError("the roster needs the columns name and team (aliases is optional)")
    report = RosterReport()
    rows: list[tuple[str, str, list[str]]] = []
    for raw in reader:
        line = reader.line_num
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        name, team = row.get("name", ""), row.get("team", "")
        if not name:
            report.errors.append((line, "name is empty"))
            continue
        if len(name) > 200 or len(team) > 200:
            report.errors.append((line, "name or team is longer than 200 characters"))
            continue
        aliases = [a.strip() for a in row.get("aliases", "").split("|") if a.strip()]
        if any(len(a) > 200 for a in aliases):
            report.errors.append((line, "an alias is longer than 200 characters"))
            continue
        rows.append((name, team, aliases))
    stamp = now_ms()
    with write_transaction(engine) as conn:
        for name, team, aliases in rows:
            player_id = player_id_for(organization_id, name, team)
            exists = conn.execute(
                select(players.c.player_id).where(players.c.player_id == player_id)
            ).first()
            if exists:
                conn.execute(
                    update(players)
                    .where(players.c.player_id == player_id)
                    .values(name=name, team=team)
                )
                report.updated += 1
            else:
                conn.execute(
                    players.insert().values(
                        player_id=player_id,
                        organization_id=organization_id,
                        name=name,
                        team=team,
                        created_at=stamp,
                    )
                )
                report.added += 1
            for alias in aliases:
                report.aliases += _teach_alias(
                    conn, "*", organization_id, alias, player_id, stamp, 0
                )
    return report


def roster(engine: Engine, organization_id: str) -> list[RosterEntry]:
    """The organization's players and teams, as entities to resolve names against."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(players.c.player_id, players.c.name, players.c.team)
            .where(players.c.organization_id == organization_id)
            .order_by(players.c.name)
        ).fetchall()
    entries = [RosterEntry(r.player_id, r.name, "player", r.team) for r in rows]
    for team in sorted({r.team for r in rows if r.team}):
        entries.append(RosterEntry(team_id_for(organization_id, team), team, "team", team))
    return entries


# --- aliases ----------------------------------------------------------------------------


def _teach_alias(
    conn: Connection,
    coach_user_id: str,
    organization_id: str,
    raw_text: str,
    entity_id: str,
    stamp: int,
    increment: int,
) -> int:
    key = raw_text.strip().lower()
    found = conn.execute(
        select(coach_player_aliases.c.id, coach_player_aliases.c.resolved_entity_id).where(
            coach_player_aliases.c.coach_user_id == coach_user_id,
            coach_player_aliases.c.organization_id == organization_id,
            coach_player_aliases.c.raw_text == key,
        )
    ).first()
    if found:
        conn.execute(
            update(coach_player_aliases)
            .where(coach_player_aliases.c.id == found.id)
            .values(
                resolved_entity_id=entity_id,
                use_count=coach_player_aliases.c.use_count + increment,
                last_used_at=stamp,
            )
        )
        return 0
    conn.execute(
        coach_player_aliases.insert().values(
            coach_user_id=coach_user_id,
            organization_id=organization_id,
            raw_text=key,
            resolved_entity_id=entity_id,
            use_count=max(increment, 1),
            created_at=stamp,
            last_used_at=stamp,
        )
    )
    return 1


def learn_alias(
    engine: Engine, coach_user_id: str, organization_id: str, raw_text: str, entity_id: str
) -> None:
    """Remember that this coach means ``entity_id`` by ``raw_text`` (use_count grows)."""
    with write_transaction(engine) as conn:
        _teach_alias(conn, coach_user_id, organization_id, raw_text, entity_id, now_ms(), 1)


def aliases_for(engine: Engine, coach_user_id: str, organization_id: str) -> dict[str, str]:
    """The coach's learned aliases over the club-wide ones (``*``): lower-cased text → id."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(
                coach_player_aliases.c.coach_user_id,
                coach_player_aliases.c.raw_text,
                coach_player_aliases.c.resolved_entity_id,
            ).where(
                coach_player_aliases.c.organization_id == organization_id,
                coach_player_aliases.c.coach_user_id.in_(["*", coach_user_id]),
            )
        ).fetchall()
    club = {r.raw_text: r.resolved_entity_id for r in rows if r.coach_user_id == "*"}
    mine = {r.raw_text: r.resolved_entity_id for r in rows if r.coach_user_id != "*"}
    return club | mine
