"""Sessions and tokens can be ended: sign-out, a new password, removing the account,
revoking a token, each at once (issue 16, item 3). Migration 0002 on both stores.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select

from conftest import STAFF_EMAIL, STAFF_PASSWORD, LiveServer
from voicewatch.auth import create_staff, create_token, hash_token
from voicewatch.clock import now_ms
from voicewatch.store import migrate
from voicewatch.store.migrate import alembic_config
from voicewatch.store.tables import api_tokens, users

CLI = [sys.executable, "-m", "voicewatch.cli"]


def cli(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--db", db, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(db_url, queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    srv.app.state.enqueue = lambda *args: None
    yield srv
    srv.stop()


def _signed_in(server: LiveServer) -> tuple[httpx.Client, str, str]:
    """A signed-in staff client, its CSRF token, and its saved session cookie."""
    create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    client = httpx.Client(base_url=server.url, timeout=10)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token[1]}
    assert client.post("/login", data=form).status_code == 303
    home = client.get("/")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', home.text)
    assert csrf is not None
    return client, csrf[1], client.cookies["vw_session"]


def _replay(server: LiveServer, cookie: str, csrf: str) -> tuple[int, int, int]:
    """(API read, page read, state change) with a saved cookie and its old CSRF token."""
    with httpx.Client(base_url=server.url, cookies={"vw_session": cookie}, timeout=10) as c:
        read = c.get("/api/v1/events").status_code
        page = c.get("/alerts").status_code
        change = c.post(
            "/api/v1/artifacts/art_none/retry",
            json={"stage": "full"},
            headers={"X-CSRF-Token": csrf},
        ).status_code
    return read, page, change


def test_a_saved_cookie_works_until_the_session_ends(server: LiveServer) -> None:
    client, csrf, cookie = _signed_in(server)
    read, page, change = _replay(server, cookie, csrf)
    assert (read, page, change) == (200, 200, 404)  # signed in: the retry finds no artifact
    client.post("/logout", data={"csrf_token": csrf})
    client.close()
    read, page, change = _replay(server, cookie, csrf)
    assert (read, page, change) == (401, 303, 401)


def test_a_password_reset_ends_the_old_sessions(server: LiveServer) -> None:
    client, csrf, cookie = _signed_in(server)
    assert _replay(server, cookie, csrf)[0] == 200
    create_staff(server.engine, STAFF_EMAIL, "a brand new passphrase")
    assert _replay(server, cookie, csrf) == (401, 303, 401)
    assert client.get("/api/v1/events").status_code == 401  # the live browser too
    client.close()


def test_remove_staff_ends_the_sessions_at_once(server: LiveServer, db_url: str) -> None:
    client, csrf, cookie = _signed_in(server)
    assert _replay(server, cookie, csrf)[0] == 200
    removed = cli("remove-staff", STAFF_EMAIL, db=db_url)
    assert removed.returncode == 0, removed.stderr
    assert _replay(server, cookie, csrf) == (401, 303, 401)
    client.close()
    again = cli("remove-staff", STAFF_EMAIL, db=db_url)
    assert again.returncode == 1 and again.stderr.strip().startswith("error: no staff account")
    with server.engine.connect() as conn:
        assert conn.execute(select(users).where(users.c.email == STAFF_EMAIL)).first() is None


def _wait_for_last_used(engine: Engine, name: str) -> None:
    """``last_used_at`` is written off the request's path; wait (bounded) for it."""
    import time

    deadline = time.monotonic() + 10
    query = select(api_tokens.c.last_used_at).where(api_tokens.c.name == name)
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar() is not None:
                return
        time.sleep(0.02)
    raise AssertionError("last_used_at was never written")


def test_revoke_token_and_list_tokens(server: LiveServer, db_url: str) -> None:
    token = create_token(server.engine, scope="ingest", name="club feed")
    headers = {"Authorization": f"Bearer {token}"}
    event = {"event_id": "evt_tok_1", "event_type": "artifact_received", "timestamp": now_ms()}
    assert httpx.post(f"{server.url}/api/v1/events", json=event, headers=headers).status_code == 200
    _wait_for_last_used(server.engine, "club feed")
    listed = cli("list-tokens", db=db_url)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "\tclub feed\t" in line)
    fields = row.split("\t")
    assert fields[2] == "ingest" and fields[4] != "-" and fields[5] == "-"  # used, not revoked
    assert token not in listed.stdout and hash_token(token) not in listed.stdout
    assert token.removeprefix("vw_")[:12] not in listed.stdout
    revoked = cli("revoke-token", "club feed", db=db_url)
    assert revoked.returncode == 0 and "revoked 1 token" in revoked.stdout
    again = {**event, "event_id": "evt_tok_2"}
    refused = httpx.post(f"{server.url}/api/v1/events", json=again, headers=headers)
    assert refused.status_code == 401
    after = cli("list-tokens", db=db_url)
    row = next(line for line in after.stdout.splitlines() if "\tclub feed\t" in line)
    assert row.split("\t")[5] != "-"
    unknown = cli("revoke-token", "no such token", db=db_url)
    assert unknown.returncode == 1 and "no live token" in unknown.stderr


def test_migration_0002_adds_the_session_generation_and_goes_back(engine: Engine) -> None:
    columns = {c["name"] for c in inspect(engine).get_columns("users")}
    assert "session_generation" in columns
    config = alembic_config(engine)
    command.downgrade(config, "0001")
    assert "session_generation" not in {c["name"] for c in inspect(engine).get_columns("users")}
    migrate(engine)
    assert "session_generation" in {c["name"] for c in inspect(engine).get_columns("users")}
    user_id = create_staff(engine, STAFF_EMAIL, STAFF_PASSWORD)
    create_staff(engine, STAFF_EMAIL, "another passphrase")  # a reset moves the generation on
    with engine.connect() as conn:
        generation = conn.execute(
            select(users.c.session_generation).where(users.c.user_id == user_id)
        ).scalar()
    assert generation == 1


def test_an_open_event_stream_ends_with_its_session(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live stream re-checks its viewer at each heartbeat (shortened here to 1 s)."""
    import time

    from voicewatch.auth import end_sessions
    from voicewatch.web import api_stream

    monkeypatch.setattr(api_stream, "HEARTBEAT_S", 1.0)
    client, _csrf, cookie = _signed_in(server)
    client.close()
    with (
        httpx.Client(base_url=server.url, cookies={"vw_session": cookie}, timeout=10) as viewer,
        viewer.stream("GET", "/api/v1/stream") as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        with server.engine.connect() as conn:
            user_id = conn.execute(select(users.c.user_id)).scalar()
        assert isinstance(user_id, str)
        end_sessions(server.engine, user_id)
        started = time.monotonic()
        for _ in lines:  # ends when the server closes the stream
            assert time.monotonic() - started < 8, "the stream outlived its session"
        elapsed = time.monotonic() - started
    assert elapsed < 8, elapsed
