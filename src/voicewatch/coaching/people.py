"""Coaches are people: a user id, a display name and an organization.

A coach row is a ``users`` row with role "coach". The pipeline creates one on a
coach's first note with the id as its name (``repository.ensure_coach``); here a
person gives it a real name, by hand (``voicewatch coach add``) or from a CSV
beside the roster (``voicewatch coach import``). Both are idempotent: adding
again renames, importing the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, select, update

from voicewatch.clock import now_ms
from voicewatch.pipeline.clubs import RecordError, organization_exists
from voicewatch.store import write_transaction
from voicewatch.store.tables import organizations, users

MAX_ID = 128
MAX_NAME = 200


@dataclass
class CoachReport:
    """What a coaches import did; ``errors`` are (CSV line number, reason)."""

    added: int = 0
    renamed: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _check(user_id: str, organization_id: str, name: str) -> str | None:
    """Why this coach cannot be stored, or None."""
    if not user_id:
        return "user_id is empty"
    if not name:
        return "name is empty"
    if not organization_id:
        return "organization is empty"
    if len(user_id) > MAX_ID or len(organization_id) > MAX_ID:
        return f"user_id or organization is longer than {MAX_ID} characters"
    if len(name) > MAX_NAME:
        return f"name is longer than {MAX_NAME} characters"
    return None


def _upsert(conn: Connection, user_id: str, organization_id: str, name: str, stamp: int) -> str:
    """Insert or rename one coach; "added", "renamed" or "unchanged"."""
    row = conn.execute(
        select(users.c.name, users.c.role, users.c.organization_id).where(
            users.c.user_id == user_id
        )
    ).first()
    if row is None:
        conn.execute(
            users.insert().values(
                user_id=user_id,
                name=name,
                role="coach",
                organization_id=organization_id,
                created_at=stamp,
            )
        )
        return "added"
    if row.role != "coach":
        raise RecordError(f"{user_id} is a {row.role} user, not a coach")
    if row.name == name and row.organization_id == organization_id:
        return "unchanged"
    conn.execute(
        update(users)
        .where(users.c.user_id == user_id)
        .values(name=name, organization_id=organization_id)
    )
    return "renamed"


def add_coach(engine: Engine, user_id: str, organization_id: str, name: str) -> str:
    """Add a coach or rename one; returns "added", "renamed" or "unchanged".

    :raises RecordError: bad input, an unknown organization, or a non-coach user.
    """
    user_id, organization_id, name = user_id.strip(), organization_id.strip(), name.strip()
    problem = _check(user_id, organization_id, name)
    if problem:
        raise RecordError(problem)
    if not organization_exists(engine, organization_id):
        raise RecordError(f"unknown organization: {organization_id} (create it first)")
    with write_transaction(engine) as conn:
        return _upsert(conn, user_id, organization_id, name, now_ms())


def set_coach_login(engine: Engine, user_id: str, email: str, password: str) -> None:
    """Let a coach sign in to the inbox page: an email and a password (argon2).

    A new password ends the coach's earlier sessions, as a staff password change does.
    """
    from argon2 import PasswordHasher

    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise RecordError("an email address is required")
    if len(password) < 8:
        raise RecordError("the password must have at least 8 characters")
    password_hash = PasswordHasher().hash(password)
    with write_transaction(engine) as conn:
        taken = conn.execute(
            select(users.c.user_id).where(users.c.email == email, users.c.user_id != user_id)
        ).first()
        if taken:
            raise RecordError(f"{email} is another user's email")
        result = conn.execute(
            update(users)
            .where(users.c.user_id == user_id, users.c.role == "coach")
            .values(
                email=email,
                password_hash=password_hash,
                session_generation=users.c.session_generation + 1,
            )
        )
        if result.rowcount != 1:
            raise RecordError(f"no coach {user_id}")


def import_coaches(
    engine: Engine, source: Path | str, organization_id: str | None = None
) -> CoachReport:
    """Load coaches from CSV: columns ``user_id``, ``name`` and ``organization``.

    ``organization_id`` (the CLI's ``--org``) fills an absent or empty
    organization column. Bad rows are reported by line and skipped; good rows land.
    """
    text = source.read_text(encoding="utf-8-sig") if isinstance(source, Path) else source
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower() for f in (reader.fieldnames or [])}
    if not {"user_id", "name"} <= fields:
        raise RecordError("the coaches CSV needs the columns user_id and name (organization)")
    if "organization" not in fields and not organization_id:
        raise RecordError("give an organization column or --org")
    rows: list[tuple[int, str, str, str]] = []
    report = CoachReport()
    for raw in reader:
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        org = row.get("organization") or (organization_id or "")
        problem = _check(row.get("user_id", ""), org, row.get("name", ""))
        if problem:
            report.errors.append((reader.line_num, problem))
            continue
        rows.append((reader.line_num, row["user_id"], org, row["name"]))
    with write_transaction(engine) as conn:
        known = {
            str(r[0])
            for r in conn.execute(
                select(organizations.c.organization_id).where(
                    organizations.c.organization_id.in_(sorted({r[2] for r in rows}))
                )
            )
        }
        stamp = now_ms()
        for line, user_id, org, name in rows:
            if org not in known:
                report.errors.append((line, f"unknown organization: {org}"))
                continue
            try:
                outcome = _upsert(conn, user_id, org, name, stamp)
            except RecordError as exc:
                report.errors.append((line, str(exc)))
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
    report.errors.sort()
    return report
