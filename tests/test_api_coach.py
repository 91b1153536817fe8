"""``/api/v1/coach`` over HTTP, for every role, on both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import STAFF_EMAIL, STAFF_PASSWORD, LiveServer
from pipeline_helpers import make_pipeline
from test_decisions import EXTRA_ROSTER, SEAN_KELLY
from voicewatch.auth import AuthError, create_staff, create_token
from voicewatch.coaching.people import add_coach
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.intake import submit_note
from voicewatch.store import read_connection
from voicewatch.store.tables import coach_decisions, voice_note_insights

NOTE = "Aoife Kelly was brilliant on the frees. Jack Walsh was tired."


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two coaches' notes processed by the real pipeline, and a live server on the same store."""
    ctx, driver = make_pipeline(db_url)
    clubs.import_roster(ctx.engine, "org_clg", EXTRA_ROSTER)
    add_coach(ctx.engine, "coach_1", "org_clg", "Jim Murphy")
    add_coach(ctx.engine, "coach_2", "org_clg", "Siobhán Walsh")
    mine = submit_note(ctx, organization_id="org_clg", coach_user_id="coach_1", text=NOTE)
    theirs = submit_note(ctx, organization_id="org_clg", coach_user_id="coach_2", text=NOTE)
    submit_note(ctx, organization_id="org_clg", coach_user_id="coach_1", text="Sean was great.")
    driver.drain()
    ctx.monitor.close()
    server = LiveServer(db_url, queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    tokens = {
        "coach_1": create_token(server.engine, scope="coach", coach="coach_1"),
        "coach_2": create_token(server.engine, scope="coach", coach="coach_2"),
    }
    yield {
        "server": server,
        "tokens": tokens,
        "mine": [d["draft_id"] for d in repo.drafts_of(server.engine, mine["artifact_id"])],
        "theirs": [d["draft_id"] for d in repo.drafts_of(server.engine, theirs["artifact_id"])],
    }
    server.stop()


def _client(world: dict[str, Any], who: str | None) -> httpx.Client:
    server: LiveServer = world["server"]
    token = {
        None: None,
        "ingest": server.ingest_token,
        "staff": server.staff_token,
        **world["tokens"],
    }[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=20)


def _decisions(world: dict[str, Any]) -> list[dict[str, Any]]:
    with read_connection(world["server"].engine) as conn:
        return [dict(r._mapping) for r in conn.execute(select(coach_decisions))]


def test_anonymous_and_ingest_are_refused(world: dict[str, Any]) -> None:
    draft = world["mine"][0]
    for who, status in ((None, 401), ("ingest", 403)):
        with _client(world, who) as client:
            assert client.get("/api/v1/coach/drafts").status_code == status
            assert client.get("/api/v1/coach/names").status_code == status
            answer = client.post(f"/api/v1/coach/drafts/{draft}/confirm", json={})
            assert answer.status_code == status
            assert set(answer.json()) == {"error", "detail"}
    assert _decisions(world) == []


def test_a_coach_sees_and_decides_only_their_own(world: dict[str, Any]) -> None:
    mine, theirs = world["mine"], world["theirs"]
    with _client(world, "coach_1") as client:
        listed = client.get("/api/v1/coach/drafts").json()["items"]
        assert [d["draft_id"] for d in listed] == mine
        assert listed[0]["coach"] == {"id": "coach_1", "name": "Jim Murphy", "short": "J. Murphy"}
        assert client.get("/api/v1/coach/drafts?coach_user_id=coach_2").json() == {"items": []}
        names = client.get("/api/v1/coach/names").json()["items"]
        assert [n["raw_text"] for n in names] == ["Sean"]
        for path in (f"drafts/{theirs[0]}/confirm", f"drafts/{theirs[0]}/reject"):
            other = client.post(f"/api/v1/coach/{path}", json={})
            assert other.status_code == 404
            absent = client.post(f"/api/v1/coach/{path.replace(theirs[0], 'nope')}", json={})
            assert absent.status_code == 404
            assert other.json()["error"].replace(theirs[0], "X") == absent.json()["error"].replace(
                "nope", "X"
            )
        confirmed = client.post(f"/api/v1/coach/drafts/{mine[0]}/confirm", json={"text": "Edited"})
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["insight"]["body"] == "Edited"
        again = client.post(f"/api/v1/coach/drafts/{mine[0]}/confirm")
        assert again.status_code == 409
        assert again.json()["error"] == f"draft {mine[0]} was already decided (applied by coach_1)"
        rejected = client.post(
            f"/api/v1/coach/drafts/{mine[1]}/reject", json={"reason": "<b>wrong</b>"}
        )
        assert rejected.status_code == 200 and rejected.json()["on_behalf"] is False
        resolved = client.post(
            f"/api/v1/coach/names/{names[0]['resolution_id']}/resolve",
            json={"entity_id": SEAN_KELLY},
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "user_resolved"
        assert resolved.json()["draft"]["player_id"] == SEAN_KELLY
    with _client(world, "coach_2") as client:
        assert [d["draft_id"] for d in client.get("/api/v1/coach/drafts").json()["items"]] == (
            world["theirs"]
        )
        assert client.get("/api/v1/coach/names").json() == {"items": []}
    assert [(d["action"], d["decided_by"]) for d in _decisions(world)] == [
        ("confirmed", "coach_1"),
        ("rejected", "coach_1"),
        ("user_resolved", "coach_1"),
    ]


def test_coach_tokens_get_403_on_staff_routes(world: dict[str, Any]) -> None:
    with _client(world, "coach_1") as client:
        for path in (
            "/api/v1/events",
            "/api/v1/artifacts",
            "/api/v1/alerts",
            "/api/v1/metrics/stages",
        ):
            assert client.get(path).status_code == 403, path
        sent = client.post("/api/v1/events", json={"event_type": "artifact_received"})
        assert sent.status_code == 403
        page = client.get("/artifacts", headers={"Accept": "text/html"})
        assert page.status_code == 403


def test_staff_act_on_behalf_recorded(world: dict[str, Any]) -> None:
    theirs = world["theirs"]
    with _client(world, "staff") as client:
        everyone = client.get("/api/v1/coach/drafts").json()["items"]
        assert {d["coach_user_id"] for d in everyone} == {"coach_1", "coach_2"}
        only = client.get("/api/v1/coach/drafts?coach_user_id=coach_2").json()["items"]
        assert [d["draft_id"] for d in only] == theirs
        answer = client.post(f"/api/v1/coach/drafts/{theirs[0]}/reject", json={"reason": "dup"})
        assert answer.status_code == 200 and answer.json()["on_behalf"] is True
    (row,) = _decisions(world)
    assert (row["decided_by"], row["coach_user_id"], row["on_behalf"]) == (
        "test staff",
        "coach_2",
        True,
    )


def _session(world: dict[str, Any]) -> tuple[httpx.Client, str]:
    server: LiveServer = world["server"]
    create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    client = httpx.Client(base_url=server.url, timeout=20)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    form = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token[1]}
    assert client.post("/login", data=form).status_code == 303
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/").text)
    assert csrf is not None
    return client, csrf[1]


def test_a_staff_session_needs_csrf_to_decide(world: dict[str, Any]) -> None:
    mine = world["mine"]
    client, csrf = _session(world)
    try:
        assert client.get("/api/v1/coach/drafts").status_code == 200
        refused = client.post(f"/api/v1/coach/drafts/{mine[0]}/confirm", json={})
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        wrong = client.post(
            f"/api/v1/coach/drafts/{mine[0]}/confirm", json={}, headers={"X-CSRF-Token": "x"}
        )
        assert wrong.status_code == 403
        assert _decisions(world) == []
        ok = client.post(
            f"/api/v1/coach/drafts/{mine[0]}/confirm", json={}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 200, ok.text
    finally:
        client.close()
    (row,) = _decisions(world)
    assert (row["decided_by"], row["on_behalf"]) == (STAFF_EMAIL, True)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"[1]", 422, "the body must be a JSON object"),
        (b'{"text": 5}', 422, "text must be a string or null"),
        (b'{"txet": "x"}', 422, "unknown field: txet"),
        (b'{"text": "  "}', 422, "the edited text is empty"),
        (b"{nope", 400, None),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(
    world: dict[str, Any], body: bytes, status: int, error: str | None
) -> None:
    with _client(world, "coach_1") as client:
        answer = client.post(
            f"/api/v1/coach/drafts/{world['mine'][0]}/confirm",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == status
    if error:
        assert answer.json()["error"] == error
    with read_connection(world["server"].engine) as conn:
        assert conn.execute(select(voice_note_insights)).first() is None


def test_hostile_text_is_stored_exactly(world: dict[str, Any]) -> None:
    hostile = "<script>alert(1)</script>' OR 1=1 -- {{7*7}}"
    with _client(world, "coach_1") as client:
        answer = client.post(
            f"/api/v1/coach/drafts/{world['mine'][0]}/confirm", json={"text": hostile}
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
    with read_connection(world["server"].engine) as conn:
        assert conn.execute(select(voice_note_insights.c.body)).scalar_one() == hostile


def test_a_coach_token_is_bound_to_an_existing_coach(world: dict[str, Any]) -> None:
    engine = world["server"].engine
    with pytest.raises(AuthError, match="no coach ghost"):
        create_token(engine, scope="coach", coach="ghost")
    with pytest.raises(AuthError, match="needs --coach"):
        create_token(engine, scope="coach")
    with pytest.raises(AuthError, match="only a coach token"):
        create_token(engine, scope="staff", coach="coach_1")


def test_undo_an_auto_applied_draft_over_http(world: dict[str, Any]) -> None:
    from sqlalchemy import update

    from voicewatch.pipeline.autoapply import apply_above_threshold, set_threshold
    from voicewatch.store import write_transaction

    engine = world["server"].engine
    first, second = world["mine"]
    artifact = repo.drafts_of(engine, world["mine"][0].rsplit(".c", 1)[0])
    assert artifact  # the drafts of coach_1's first note
    with write_transaction(engine) as conn:
        set_threshold(conn, "coach_1", "org_clg", 0.05, 0)
    ctx, _driver = make_pipeline(world["server"].settings.database_url)
    try:
        assert apply_above_threshold(ctx, artifact[0]["artifact_id"]) == 2
    finally:
        ctx.monitor.close()
    with write_transaction(engine) as conn:  # the second was applied two hours ago
        conn.execute(
            update(voice_note_insights)
            .where(voice_note_insights.c.draft_id == second)
            .values(applied_at=voice_note_insights.c.applied_at - 2 * 3_600_000)
        )
    with _client(world, "coach_2") as other:
        assert other.post(f"/api/v1/coach/drafts/{first}/undo").status_code == 404
        assert other.get("/api/v1/coach/applied").json()["items"] == []  # not theirs
    with _client(world, "coach_1") as client:
        listed = client.get("/api/v1/coach/applied").json()["items"]
        assert [i["draft_id"] for i in listed] == [first]  # the second's window has closed
        assert listed[0]["coach"]["name"] == "Jim Murphy" and listed[0]["auto_applied"]
        assert listed[0]["undo_until"] == listed[0]["applied_at"] + 60 * 60_000
        ok = client.post(f"/api/v1/coach/drafts/{first}/undo")
        assert ok.status_code == 200 and ok.json()["status"] == "pending"
        late = client.post(f"/api/v1/coach/drafts/{second}/undo")
        assert late.status_code == 409 and "undo window" in late.json()["error"]
        assert [d["draft_id"] for d in client.get("/api/v1/coach/drafts").json()["items"]] == [
            first
        ]
        assert client.get("/api/v1/coach/applied").json()["items"] == []  # undone


def test_another_coachs_name_and_an_expired_or_resolved_one_over_http(
    world: dict[str, Any],
) -> None:
    """A name of another coach answers exactly as an absent one (404); an expired draft
    and a name resolved twice are 409s that say why."""
    from sqlalchemy import update

    from voicewatch.store import write_transaction
    from voicewatch.store.tables import insight_drafts

    with _client(world, "coach_1") as client:
        (name,) = client.get("/api/v1/coach/names").json()["items"]
    resolution = name["resolution_id"]
    with _client(world, "coach_2") as other:
        theirs = other.post(f"/api/v1/coach/names/{resolution}/resolve", json={"entity_id": None})
        absent = other.post("/api/v1/coach/names/nope/resolve", json={"entity_id": None})
    assert theirs.status_code == absent.status_code == 404
    assert theirs.json()["error"].replace(resolution, "X") == absent.json()["error"].replace(
        "nope", "X"
    )
    with write_transaction(world["server"].engine) as conn:
        conn.execute(
            update(insight_drafts)
            .where(insight_drafts.c.draft_id == world["mine"][0])
            .values(status="expired")
        )
    with _client(world, "coach_1") as client:
        expired = client.post(f"/api/v1/coach/drafts/{world['mine'][0]}/confirm", json={})
        assert expired.status_code == 409
        assert expired.json()["error"] == (
            f"draft {world['mine'][0]} expired: it can no longer be decided"
        )
        body = {"entity_id": SEAN_KELLY}
        path = f"/api/v1/coach/names/{resolution}/resolve"
        assert client.post(path, json=body).status_code == 200
        twice = client.post(path, json=body)
        assert twice.status_code == 409
        assert "already resolved (user_resolved by coach_1)" in twice.json()["error"]
    assert [d["action"] for d in _decisions(world)] == ["user_resolved"]


def _coach_session(world: dict[str, Any]) -> tuple[httpx.Client, str]:
    from voicewatch.coaching.people import set_coach_login

    server: LiveServer = world["server"]
    set_coach_login(server.engine, "coach_1", "jim@clonmore.test", "hurling is life 2026")
    client = httpx.Client(base_url=server.url, timeout=20)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    form = {"email": "jim@clonmore.test", "password": "hurling is life 2026"}
    form["csrf_token"] = token[1]
    assert client.post("/login", data=form).headers["location"] == "/inbox"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/inbox").text)
    assert csrf is not None
    return client, csrf[1]


def test_every_state_change_of_a_coach_session_needs_csrf(world: dict[str, Any]) -> None:
    """Each change a signed-in coach can make, through the inbox's forms and through the
    API, is refused without the session's CSRF token (and with a wrong one), and changes
    nothing; the staff pages and API stay 403 for the session as for a coach token."""
    draft = world["mine"][0]
    client, csrf = _coach_session(world)
    try:
        (name,) = client.get("/api/v1/coach/names").json()["items"]
        changes = [
            f"drafts/{draft}/confirm",
            f"drafts/{draft}/reject",
            f"drafts/{draft}/undo",
            f"names/{name['resolution_id']}/resolve",
        ]
        for change in changes:
            for sent in ({}, {"csrf_token": "wrong"}):
                page = client.post(f"/inbox/{change}", data=sent)
                assert page.status_code == 403, (change, sent)
            api = client.post(f"/api/v1/coach/{change}", json={})
            assert api.status_code == 403 and "CSRF" in api.json()["error"], change
            wrong = client.post(f"/api/v1/coach/{change}", json={}, headers={"X-CSRF-Token": "x"})
            assert wrong.status_code == 403, change
        assert _decisions(world) == []
        html = {"Accept": "text/html"}
        for path in ("/", "/disambiguation", "/pipeline", "/metrics", "/artifacts"):
            assert client.get(path, headers=html).status_code == 403, path
        for path in ("/api/v1/artifacts", "/api/v1/alerts", "/api/v1/metrics/stages"):
            assert client.get(path).status_code == 403, path
        ok = client.post(
            f"/api/v1/coach/drafts/{draft}/reject", json={}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 200, ok.text  # the token makes the same request pass
    finally:
        client.close()
    assert [(d["action"], d["on_behalf"]) for d in _decisions(world)] == [("rejected", False)]


def test_a_coach_token_gets_403_on_the_staff_pages(world: dict[str, Any]) -> None:
    html = {"Accept": "text/html"}
    with _client(world, "coach_1") as client:
        for path in ("/", "/disambiguation", "/pipeline", "/metrics", "/alerts", "/events"):
            assert client.get(path, headers=html).status_code == 403, path
