"""``voicewatch.names``: the one organization and coach name lookup, one query per kind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert

from voicewatch.names import coach_names, names, organization_choices, organization_names
from voicewatch.store import read_connection
from voicewatch.store.tables import organizations, users


@pytest.fixture
def directory(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(
            insert(organizations),
            [
                {"organization_id": "org_b", "name": "Bravo RFC", "created_at": 0},
                {"organization_id": "org_a", "name": "Alpha Club", "created_at": 0},
            ],
        )
        conn.execute(
            insert(users),
            [
                {"user_id": "c1", "name": "Coach One", "role": "coach", "created_at": 0},
                {"user_id": "c2", "name": "", "role": "coach", "created_at": 0},
            ],
        )
    return engine


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_names_of_a_page_in_one_query_per_kind(directory: Engine, statements: list[str]) -> None:
    orgs, coaches = names(directory, ["org_a", None, "org_x", "org_a"], ["c1", "c2", "c9", None])
    assert orgs == {"org_a": "Alpha Club"}  # unknown ids are absent: the caller decides
    assert coaches == {"c1": "Coach One"}  # a coach without a name is absent too
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2


def test_no_ids_no_query(directory: Engine, statements: list[str]) -> None:
    with read_connection(directory) as conn:
        assert organization_names(conn, []) == {}
        assert coach_names(conn, [None, ""]) == {}
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def test_organization_choices_by_name(directory: Engine) -> None:
    assert organization_choices(directory) == [
        {"id": "org_a", "name": "Alpha Club"},
        {"id": "org_b", "name": "Bravo RFC"},
    ]
