"""Coaches are people: ``coach add``, the coaches CSV import, and names on pages."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, select

from voicewatch.auth import principal_for_token
from voicewatch.coaching.people import add_coach, import_coaches
from voicewatch.names import coach_labels, short_name
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.clubs import RecordError
from voicewatch.store import make_engine, read_connection
from voicewatch.store.tables import users

CLI = [sys.executable, "-m", "voicewatch.cli"]


@pytest.fixture
def club(engine: Engine) -> Engine:
    clubs.upsert_organization(engine, "org_hrc", "Harbour Rugby Club")
    clubs.upsert_organization(engine, "org_clg", "Clonmore GAA")
    return engine


def _coach(engine: Engine, user_id: str) -> dict[str, Any] | None:
    with read_connection(engine) as conn:
        row = conn.execute(select(users).where(users.c.user_id == user_id)).first()
    return dict(row._mapping) if row else None


def test_add_is_idempotent_and_renames(club: Engine) -> None:
    assert add_coach(club, "coach_hrc_1", "org_hrc", "Jim Murphy") == "added"
    assert add_coach(club, "coach_hrc_1", "org_hrc", "Jim Murphy") == "unchanged"
    assert add_coach(club, " coach_hrc_1 ", "org_hrc", "James Murphy ") == "renamed"
    row = _coach(club, "coach_hrc_1")
    assert row is not None
    assert (row["name"], row["role"], row["organization_id"]) == (
        "James Murphy",
        "coach",
        "org_hrc",
    )


def test_a_coach_made_by_a_note_gets_named(club: Engine) -> None:
    clubs.ensure_coach(club, "coach_hrc_2", "org_hrc")  # the pipeline's first note
    assert _coach(club, "coach_hrc_2")["name"] == "coach_hrc_2"  # type: ignore[index]
    assert add_coach(club, "coach_hrc_2", "org_hrc", "Niamh Fitzgerald") == "renamed"
    assert _coach(club, "coach_hrc_2")["name"] == "Niamh Fitzgerald"  # type: ignore[index]


def test_add_refuses_bad_input(club: Engine) -> None:
    with pytest.raises(RecordError, match="unknown organization: org_nope"):
        add_coach(club, "c1", "org_nope", "Jim")
    with pytest.raises(RecordError, match="name is empty"):
        add_coach(club, "c1", "org_hrc", "  ")
    with pytest.raises(RecordError, match="longer than 200"):
        add_coach(club, "c1", "org_hrc", "x" * 201)
    clubs.ensure_coach(club, "c1", "org_hrc")
    with club.begin() as conn:
        conn.execute(users.update().where(users.c.user_id == "c1").values(role="staff"))
    with pytest.raises(RecordError, match="c1 is a staff user, not a coach"):
        add_coach(club, "c1", "org_hrc", "Jim")


COACHES_CSV = """user_id,name,organization
coach_clg_1,Jim Murphy,org_clg
,No Id,org_clg
coach_clg_2,Siobhán Walsh,
coach_clg_3,,org_clg
coach_x,Somebody,org_nope
coach_hrc_1,<script>alert(1)</script>,org_hrc
"""


def test_import_reports_bad_rows_by_line_and_keeps_the_good(club: Engine) -> None:
    report = import_coaches(club, COACHES_CSV, organization_id="org_clg")
    assert (report.added, report.renamed, report.unchanged) == (3, 0, 0)
    assert report.errors == [
        (3, "user_id is empty"),
        (5, "name is empty"),
        (6, "unknown organization: org_nope"),
    ]
    assert _coach(club, "coach_clg_2")["organization_id"] == "org_clg"  # type: ignore[index]
    assert _coach(club, "coach_hrc_1")["name"] == "<script>alert(1)</script>"  # type: ignore[index]
    again = import_coaches(club, COACHES_CSV, organization_id="org_clg")
    assert (again.added, again.renamed, again.unchanged) == (0, 0, 3)


def test_import_needs_its_columns(club: Engine) -> None:
    with pytest.raises(RecordError, match="user_id and name"):
        import_coaches(club, "id,name\nx,y\n")
    with pytest.raises(RecordError, match="--org"):
        import_coaches(club, "user_id,name\nx,y\n")


@pytest.mark.parametrize(
    ("full", "short"),
    [
        ("Jim Murphy", "J. Murphy"),
        ("Seán Ó Briain", "S. Ó Briain"),
        ("siobhán walsh", "S. walsh"),
        ("Madonna", "Madonna"),
        ("coach_hrc_1", "coach_hrc_1"),
        ("  ", ""),
    ],
)
def test_short_name(full: str, short: str) -> None:
    assert short_name(full) == short


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_labels_of_a_page_in_one_query(club: Engine, statements: list[str]) -> None:
    add_coach(club, "coach_hrc_1", "org_hrc", "Jim Murphy")
    statements.clear()
    with read_connection(club) as conn:
        labels = coach_labels(conn, (i for i in ["coach_hrc_1", None, "ghost", "coach_hrc_1"]))
    assert labels == {
        "coach_hrc_1": {"id": "coach_hrc_1", "name": "Jim Murphy", "short": "J. Murphy"},
        "ghost": {"id": "ghost", "name": "ghost", "short": "ghost"},
    }
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_cli_coach_add_and_import(db_url: str, tmp_path: Any) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "--db", db_url, *args], capture_output=True, text=True, timeout=120
        )

    assert run("org", "create", "org_hrc", "--name", "Harbour RFC").returncode == 0
    added = run("coach", "add", "coach_hrc_1", "--org", "org_hrc", "--name", "Jim Murphy")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added coach_hrc_1: Jim Murphy (org_hrc)"
    renamed = run("coach", "add", "coach_hrc_1", "--org", "org_hrc", "--name", "Jimmy Murphy")
    assert renamed.stdout.strip() == "renamed coach_hrc_1: Jimmy Murphy (org_hrc)"
    bad = run("coach", "add", "coach_hrc_1", "--org", "org_nope", "--name", "J")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: unknown organization: org_nope (create it first)"
    csv_file = tmp_path / "coaches.csv"
    csv_file.write_text("user_id,name\ncoach_hrc_2,Colm Hughes\n,Nobody\n")
    imported = run("coach", "import", str(csv_file), "--org", "org_hrc")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "added 1, renamed 0, unchanged 0, bad rows 1"
    assert imported.stderr.strip() == "line 3: user_id is empty"
    made = run("create-token", "--scope", "coach", "--coach", "coach_hrc_1", "--name", "phone")
    assert made.returncode == 0, made.stderr
    engine = make_engine(db_url)
    principal = principal_for_token(engine, made.stdout.strip().splitlines()[-1])
    engine.dispose()
    assert (principal.scope, principal.coach_user_id, principal.is_staff) == (
        "coach",
        "coach_hrc_1",
        False,
    )
    ghost = run("create-token", "--scope", "coach", "--coach", "ghost")
    assert ghost.returncode == 1
    assert ghost.stderr.strip() == "error: no coach ghost (add it with: voicewatch coach add)"


def test_demo_clubs_have_named_coaches(engine: Engine) -> None:
    from voicewatch.simulate import seed_demo_clubs

    seed_demo_clubs(engine)
    seed_demo_clubs(engine)  # idempotent
    with read_connection(engine) as conn:
        labels = coach_labels(conn, ["coach_hrc_1", "coach_clg_1", "coach_rvfc_4"])
    assert labels["coach_clg_1"]["short"] == "J. Murphy"
    assert labels["coach_hrc_1"]["name"] == "Niamh Fitzgerald"
    assert labels["coach_rvfc_4"]["name"] == "Gary Dunne"


def test_pages_show_the_short_name_with_the_id_on_hover(live_server: Any) -> None:
    engine = live_server.engine
    clubs.upsert_organization(engine, "org_hrc", "Harbour Rugby Club")
    art = repo.create_artifact(
        engine,
        organization_id="org_hrc",
        coach_user_id="coach_hrc_1",
        source_channel="app",
        text="Finn was sharp today.",
    )
    add_coach(engine, "coach_hrc_1", "org_hrc", "Jim Murphy")
    html = {"Accept": "text/html", **live_server.headers()}
    with httpx.Client(base_url=live_server.url, headers=html) as client:
        grid = client.get("/artifacts")
        assert grid.status_code == 200
        assert '<td title="coach_hrc_1">J. Murphy</td>' in grid.text
        detail = client.get(f"/artifacts/{art['artifact_id']}")
        assert detail.status_code == 200
        assert "Jim Murphy" in detail.text and "coach_hrc_1" in detail.text


def test_artifacts_api_names_the_coach_beside_the_id(live_server: Any) -> None:
    """The list and the detail carry ``coach_name``/``coach_short`` with ``coach_user_id``,
    and a page of artifacts of three coaches reads ``users`` once (no N+1)."""
    from voicewatch.dashboard import records

    engine = live_server.engine
    clubs.upsert_organization(engine, "org_hrc", "Harbour Rugby Club")
    made = [
        repo.create_artifact(
            engine,
            organization_id="org_hrc",
            coach_user_id=coach,
            source_channel="app",
            text=f"Note {i} about Finn.",
        )
        for i, coach in enumerate(["coach_hrc_1", "coach_hrc_2", "coach_hrc_1", "ghost"])
    ]
    add_coach(engine, "coach_hrc_1", "org_hrc", "Jim Murphy")
    add_coach(engine, "coach_hrc_2", "org_hrc", "Siobhán Walsh")
    with httpx.Client(base_url=live_server.url, headers=live_server.headers()) as client:
        listed = client.get("/api/v1/artifacts")
        assert listed.status_code == 200
        by_id = {i["artifact_id"]: i for i in listed.json()["items"]}
        detail = client.get(f"/api/v1/artifacts/{made[1]['artifact_id']}")
        assert detail.status_code == 200
    coaches = [
        (by_id[a["artifact_id"]]["coach_user_id"], by_id[a["artifact_id"]]["coach_name"])
        for a in made
    ]
    assert coaches == [
        ("coach_hrc_1", "Jim Murphy"),
        ("coach_hrc_2", "Siobhán Walsh"),
        ("coach_hrc_1", "Jim Murphy"),
        ("ghost", "ghost"),  # nobody named it yet: the id stands in
    ]
    assert by_id[made[0]["artifact_id"]]["coach_short"] == "J. Murphy"
    shown = detail.json()["artifact"]
    assert (shown["coach_user_id"], shown["coach_name"], shown["coach_short"]) == (
        "coach_hrc_2",
        "Siobhán Walsh",
        "S. Walsh",
    )
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        rows, _cursor = records.list_artifacts(engine, limit=50)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(rows) == 4
    on_users = [s for s in seen if "FROM users" in s]
    assert len(on_users) == 1, on_users
