"""Counting the uses of a learned alias, so ``use_count`` says how often it decided.

An alias is taught by a person (``repository.learn_alias``: a coach resolving a
name, or the roster's aliases column); each later note in which it resolves a
name by itself counts one more use. The coach's own alias counts first; a
club-wide one (``*``, from the roster) when the coach has none.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, update

from voicewatch.model import RESOLVED_BY_ALIAS
from voicewatch.store.tables import coach_player_aliases

al = coach_player_aliases

#: ``resolved_by`` of a resolution that a learned alias decided (the vocabulary's).
BY_ALIAS = RESOLVED_BY_ALIAS


def _keys(raw: str) -> list[str]:
    key = raw.strip().lower()
    keys = [key]
    for suffix in ("'s", "\u2019s", "'"):
        if key.endswith(suffix) and len(key) > len(suffix):
            keys.append(key[: -len(suffix)])
    return keys


def count_alias_uses(
    conn: Connection, coach_user_id: str, organization_id: str, raws: Iterable[str], at: int
) -> int:
    """Add one use to the alias behind each of ``raws``; returns how many were counted."""
    counted = 0
    for raw in raws:
        for owner in (coach_user_id, "*"):
            result = conn.execute(
                update(al)
                .where(
                    al.c.organization_id == organization_id,
                    al.c.coach_user_id == owner,
                    al.c.raw_text.in_(_keys(raw)),
                )
                .values(use_count=al.c.use_count + 1, last_used_at=at)
            )
            if result.rowcount:
                counted += 1
                break
    return counted
