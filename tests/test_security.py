"""Access, sessions, CSRF, token storage, login throttling and the audit trail (issue 6).

Every route the app serves is enumerated from ``app.routes`` and tried as an
anonymous visitor (401 JSON for the API, a redirect to /login for pages), with
an ingest token and a signed-in non-staff session (403), and as staff (neither
401 nor 403). A route added without a check fails here.

Bugs found here are ``xfail(strict=True)``: each flips to a failure once fixed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import itsdangerous
import pytest
from sqlalchemy import Engine, select

from conftest import STAFF_EMAIL, STAFF_PASSWORD, LiveServer
from pipeline_helpers import make_pipeline, run_note
from voicewatch import alerts
from voicewatch.alerts.notify import AlertStream, Notifier
from voicewatch.auth import create_staff, create_token, revoke_token
from voicewatch.clock import now_ms
from voicewatch.config import AlertThresholds
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.store import write_transaction
from voicewatch.store.tables import (
    ai_service_health,
    api_tokens,
    retry_attempts,
    users,
    voice_note_artifacts,
    voice_pipeline_alerts,
    voice_pipeline_events,
)
from voicewatch.web.login_limit import LoginLimiter
from voicewatch.web.security import SESSION_COOKIE

SECRET = "test-secret-for-sessions"
#: Open to everyone (DESIGN.md "Access"): login, logout, liveness.
OPEN = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/api/v1/health")}
#: Ingest or staff.
INGEST = {("POST", "/api/v1/events"), ("POST", "/api/v1/artifacts"), ("POST", "/v1/traces")}
#: The coach loop's routes: a coach (token or session) may call them too (tests/test_api_coach.py).
COACH = {
    ("GET", "/api/v1/coach/drafts"),
    ("GET", "/api/v1/coach/names"),
    ("GET", "/api/v1/coach/applied"),
    ("POST", "/api/v1/coach/drafts/{draft_id}/confirm"),
    ("POST", "/api/v1/coach/drafts/{draft_id}/reject"),
    ("POST", "/api/v1/coach/drafts/{draft_id}/undo"),
    ("POST", "/api/v1/coach/names/{resolution_id}/resolve"),
    ("GET", "/inbox"),
    ("POST", "/inbox/drafts/{draft_id}/confirm"),
    ("POST", "/inbox/drafts/{draft_id}/reject"),
    ("POST", "/inbox/drafts/{draft_id}/undo"),
    ("POST", "/inbox/names/{resolution_id}/resolve"),
}
#: Routes the enumeration must find, so that it can never pass by finding none.
KNOWN = {
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/events.csv"),
    ("GET", "/api/v1/artifacts"),
    ("GET", "/api/v1/artifacts/{artifact_id}"),
    ("POST", "/api/v1/artifacts/{artifact_id}/retry"),
    ("GET", "/api/v1/metrics/realtime"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"),
    ("GET", "/api/v1/stream"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/"),
    ("GET", "/pipeline"),
    ("GET", "/pipeline/{stage}"),
    ("GET", "/artifacts"),
    ("GET", "/artifacts/{artifact_id}"),
    ("GET", "/events"),
    ("GET", "/metrics"),
    ("GET", "/alerts"),
}


# --- servers -----------------------------------------------------------------------------


def _start(db_url: str, tmp_path: Path, **settings: Any) -> LiveServer:
    return LiveServer(
        db_url,
        secret_key=SECRET,
        audio_dir=str(tmp_path / "audio"),
        queue_url=f"sqlite:///{tmp_path / 'queue.db'}",
        **settings,
    )


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server on SQLite and on PostgreSQL, with a known session secret."""
    srv = _start(db_url, tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def lite(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    srv = _start(sqlite_url, tmp_path)
    yield srv
    srv.stop()


# --- helpers -------------------------------------------------------------------------------


def app_routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, path, endpoint module) of every route, however FastAPI nests them.

    FastAPI >= 0.16x keeps included routers as ``_IncludedRouter`` entries of
    ``app.routes`` whose ``effective_route_contexts()`` hold the real routes;
    older versions list the routes themselves. Mounts other than /static fail.
    """
    found: list[tuple[str, str, str]] = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            pairs = [
                (c.path or c.original_route.path, c.original_route, c.endpoint) for c in contexts()
            ]
        elif getattr(route, "path", None) == "/static":
            continue
        elif hasattr(route, "methods") and hasattr(route, "endpoint"):
            pairs = [(route.path, route, route.endpoint)]
        else:
            raise AssertionError(f"a route this test cannot classify: {route!r}")
        for path, original, endpoint in pairs:
            endpoint = endpoint or original.endpoint
            for method in sorted(set(original.methods) - {"HEAD", "OPTIONS"}):
                found.append((method, path, endpoint.__module__))
    return found


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "dummy", path)


def _call(server: LiveServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; a stream is closed as soon as its headers arrive."""
    kwargs.setdefault("json", {"stage": "full"} if method == "POST" else None)
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream(method, _fill(path), **kwargs) as response,
    ):
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
        return response


def _session_cookie(data: dict[str, Any], secret: str = SECRET) -> str:
    """A session cookie as Starlette's SessionMiddleware signs it."""
    payload = base64.b64encode(json.dumps(data).encode())
    return itsdangerous.TimestampSigner(secret).sign(payload).decode()


def _coach_session(server: LiveServer) -> dict[str, Any]:
    """A signed-in coach's session data (a real, non-staff user row)."""
    with write_transaction(server.engine) as conn:
        conn.execute(
            users.insert().values(
                user_id="coach_sess",
                email="coach@x.test",
                role="coach",
                password_hash="argon2-hash-not-used-here",
                created_at=now_ms(),
            )
        )
    return {"uid": "coach_sess", "gen": 0}


def _login(server: LiveServer, client: httpx.Client) -> httpx.Response:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return client.post(
        "/login",
        data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token[1]},
    )


def _signed_in(server: LiveServer) -> tuple[httpx.Client, str]:
    """A staff member's browser-like client and its session's CSRF token."""
    create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    client = httpx.Client(base_url=server.url, timeout=10)
    assert _login(server, client).status_code == 303
    page = client.get("/")
    assert page.status_code == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert match is not None
    return client, match[1]


def _raise_alert(server: LiveServer) -> int:
    with write_transaction(server.engine) as conn:
        conn.execute(
            ai_service_health.insert().values(
                service="transcription",
                status="down",
                circuit_breaker_state="open",
                updated_at=now_ms(),
            )
        )
    alerts.check_health(
        server.engine, now_ms(), AlertThresholds(), notifier=Notifier(stream=AlertStream())
    )
    with server.engine.connect() as conn:
        ids = conn.execute(select(voice_pipeline_alerts.c.id)).scalars().all()
    assert ids, "no alert was raised"
    return int(ids[0])


def _failed_artifact(server: LiveServer) -> tuple[Any, Any, str]:
    """A real pipeline whose transcription failed once: retryable."""
    ctx, driver = make_pipeline(server.settings.database_url)
    server.app.state.enqueue = driver.enqueue
    row = run_note(
        ctx, driver, "Sean Murphy twisted his knee at training.", fail_plan="transcription"
    )
    assert row["status"] == "failed"
    return ctx, driver, row["artifact_id"]


def _rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


# --- every route ---------------------------------------------------------------------------


def test_every_route_is_for_staff_only(server: LiveServer) -> None:
    server.app.state.enqueue = lambda *args: None
    routes = app_routes(server.app)
    pairs = {(m, p) for m, p, _ in routes}
    assert pairs >= KNOWN | OPEN | INGEST | COACH, (KNOWN | OPEN | INGEST | COACH) - pairs
    non_staff = {"Cookie": f"{SESSION_COOKIE}={_session_cookie(_coach_session(server))}"}
    staff_id = create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    forged = {
        "Cookie": f"{SESSION_COOKIE}="
        + _session_cookie({"uid": staff_id, "gen": 0}, secret="not-the-key")
    }
    checked = 0
    for method, path, module in routes:
        if (method, path) in OPEN:
            continue
        where = f"{method} {path}"
        is_api = module.startswith("voicewatch.web.api_")
        assert is_api or module.startswith("voicewatch.web.pages_"), (where, module)
        for who, headers in (
            ("anonymous", {}),
            ("a forged session", forged),
            ("a bad token", {"Authorization": "Bearer vw_not-a-real-token"}),
        ):
            response = _call(server, method, path, headers=headers)
            if is_api:
                assert response.status_code == 401, (where, who, response.status_code)
                assert response.headers["content-type"].startswith("application/json")
                assert isinstance(response.json()["error"], str)
            else:
                assert response.status_code == 303, (where, who, response.status_code)
                assert response.headers["location"].startswith("/login?next=/"), where
        if (method, path) not in INGEST:
            for who, headers in (
                ("an ingest token", server.headers(server.ingest_token)),
                ("a non-staff session", non_staff),
            ):
                if (method, path) in COACH and who == "a non-staff session":
                    continue  # a coach's own session: its inbox (tests/test_api_coach.py)
                response = _call(server, method, path, headers=headers)
                assert response.status_code == 403, (where, who, response.status_code)
        staff = _call(server, method, path, headers=server.headers())
        assert staff.status_code not in (401, 403), (where, staff.status_code, staff.text[:200])
        assert staff.status_code < 500, (where, staff.status_code, staff.text[:200])
        checked += 1
    assert checked >= len(KNOWN) + len(INGEST)


def test_ingest_routes_accept_ingest_tokens(server: LiveServer) -> None:
    clubs.upsert_organization(server.engine, "org_x", "X")
    headers = server.headers(server.ingest_token)
    event = {"event_id": "evt_ingest_1", "event_type": "artifact_received", "timestamp": now_ms()}
    sent = httpx.post(f"{server.url}/api/v1/events", json=event, headers=headers)
    assert sent.status_code == 200 and sent.json()["accepted"] == 1
    note = httpx.post(
        f"{server.url}/api/v1/artifacts",
        data={"organization_id": "org_x", "coach_user_id": "coach_1", "text": "Knee knock."},
        headers=headers,
    )
    assert note.status_code == 202, note.text
    assert repo.get_artifact(server.engine, note.json()["artifact_id"]) is not None
    # what the ingest token sent, it may not read back
    assert httpx.get(f"{server.url}/api/v1/events", headers=headers).status_code == 403
    # a revoked ingest token sends nothing
    revoke_token(server.engine, "test ingest")
    again = {**event, "event_id": "evt_ingest_2"}
    refused = httpx.post(f"{server.url}/api/v1/events", json=again, headers=headers)
    assert refused.status_code == 401
    ids = {r["event_id"] for r in _rows(server.engine, voice_pipeline_events)}
    assert "evt_ingest_1" in ids and "evt_ingest_2" not in ids


# --- sessions ----------------------------------------------------------------------------------


def _cookie_flags(response: httpx.Response) -> set[str]:
    values = [v for v in response.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE)]
    assert values, "no session cookie was set"
    return {part.strip().lower() for part in values[-1].split(";")[1:]}


def test_session_cookies_are_httponly_and_samesite(lite: LiveServer) -> None:
    create_staff(lite.engine, STAFF_EMAIL, STAFF_PASSWORD)
    with httpx.Client(base_url=lite.url) as client:
        anonymous = client.get("/login")  # the CSRF token lives in a session already
        signed_in = _login(lite, client)
    assert signed_in.status_code == 303
    for response in (anonymous, signed_in):
        flags = _cookie_flags(response)
        assert "httponly" in flags and "samesite=lax" in flags, flags
        assert "secure" not in flags  # plain HTTP: Secure would lose the session
        max_age = next(int(f.split("=")[1]) for f in flags if f.startswith("max-age="))
        assert 0 < max_age <= 12 * 3600


def test_session_cookies_are_secure_behind_https(sqlite_url: str, tmp_path: Path) -> None:
    server = _start(sqlite_url, tmp_path, secure_cookies=True)
    try:
        create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
        page = httpx.get(f"{server.url}/login")
        flags = _cookie_flags(page)
        assert {"secure", "httponly", "samesite=lax"} <= flags, flags
        # over plain HTTP the client keeps a Secure cookie to itself: send it by hand
        cookie = page.headers["set-cookie"].split(";")[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        signed_in = httpx.post(
            f"{server.url}/login",
            data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token[1]},
            headers={"Cookie": cookie},
        )
        assert signed_in.status_code == 303
        assert {"secure", "httponly", "samesite=lax"} <= _cookie_flags(signed_in)
    finally:
        server.stop()


def test_a_tampered_session_is_anonymous(lite: LiveServer) -> None:
    create_staff(lite.engine, STAFF_EMAIL, STAFF_PASSWORD)
    with httpx.Client(base_url=lite.url) as client:
        assert _login(lite, client).status_code == 303
        real = client.cookies[SESSION_COOKIE]
    assert httpx.get(f"{lite.url}/api/v1/events", cookies={SESSION_COOKIE: real}).status_code == 200
    payload, _, signature = real.partition(".")
    data = json.loads(base64.b64decode(payload))
    data["user"] = "someone-else@x.test"
    tampered = base64.b64encode(json.dumps(data).encode()).decode() + "." + signature
    for cookie in (tampered, real[:-4] + "AAAA", "garbage"):
        response = httpx.get(f"{lite.url}/api/v1/events", cookies={SESSION_COOKIE: cookie})
        assert response.status_code == 401


# --- CSRF ----------------------------------------------------------------------------------------


def test_session_state_changes_need_the_csrf_token(server: LiveServer) -> None:
    """Without the session's CSRF token (none, empty, or a wrong one) nothing changes.

    The wrong token is the real one with its last character replaced by a
    *different* character (``"x"``, or ``"y"`` when the real one ends in ``x``),
    so it differs from the real token in every run. (It used to be
    ``csrf[:-1] + "x"``, which *is* the real token whenever that ends in
    ``x``: 1 run in 64, when the test failed with a 202.)
    """
    ctx, _driver, artifact_id = _failed_artifact(server)
    alert_id = _raise_alert(server)
    client, csrf = _signed_in(server)
    try:
        retry = f"/api/v1/artifacts/{artifact_id}/retry"
        ack = f"/api/v1/alerts/{alert_id}/acknowledge"
        wrong = csrf[:-1] + ("y" if csrf.endswith("x") else "x")
        assert wrong != csrf and len(wrong) == len(csrf)
        for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": wrong}):
            assert client.post(retry, json={"stage": "full"}, headers=headers).status_code == 403
            assert client.post(ack, headers=headers).status_code == 403
        # a cross-site form post carries a wrong token in the form
        forged = client.post(retry, data={"stage": "full", "csrf_token": "forged"})
        assert forged.status_code == 403
        assert _rows(server.engine, retry_attempts) == []
        [alert] = _rows(server.engine, voice_pipeline_alerts)
        assert alert["acknowledged_by"] is None and alert["acknowledged_at"] is None
        # logout without the token keeps you signed in
        out = client.post("/logout")
        assert out.status_code == 303
        assert client.get("/api/v1/events").status_code == 200
        # with the token each goes through, and says who did it
        done = client.post(retry, json={"stage": "full"}, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 202, done.text
        [attempt] = _rows(server.engine, retry_attempts)
        assert attempt["requested_by"] == STAFF_EMAIL
        acked = client.post(ack, headers={"X-CSRF-Token": csrf})
        assert acked.status_code == 200 and acked.json()["acknowledged_by"] == STAFF_EMAIL
        out = client.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert client.get("/api/v1/events").status_code == 401
    finally:
        client.close()
        ctx.monitor.close(timeout=5)
        ctx.engine.dispose()


def test_ingest_routes_need_the_csrf_token_with_a_session(lite: LiveServer) -> None:
    clubs.upsert_organization(lite.engine, "org_x", "X")
    client, csrf = _signed_in(lite)
    event = {"event_id": "evt_csrf", "event_type": "artifact_received", "timestamp": now_ms()}
    note = {"organization_id": "org_x", "coach_user_id": "coach_1", "text": "Knee knock."}
    try:
        assert client.post("/api/v1/events", json=event).status_code == 403
        assert client.post("/api/v1/artifacts", data=note).status_code == 403
        assert _rows(lite.engine, voice_pipeline_events) == []
        assert _rows(lite.engine, voice_note_artifacts) == []
        sent = client.post("/api/v1/events", json=event, headers={"X-CSRF-Token": csrf})
        assert sent.status_code == 200
        form = client.post("/api/v1/artifacts", data={**note, "csrf_token": csrf})
        assert form.status_code == 202
    finally:
        client.close()


# --- tokens, passwords, throttling ---------------------------------------------------------------


def test_api_tokens_are_stored_hashed(server: LiveServer) -> None:
    extra = create_token(server.engine, scope="staff", name="hash check")
    plain = [server.staff_token, server.ingest_token, extra]
    rows = _rows(server.engine, api_tokens)
    assert len(rows) == 3
    dump = repr(rows)
    for token in plain:
        secret = token.removeprefix("vw_")
        assert secret not in dump and secret[:16] not in dump and secret[-16:] not in dump
    assert {r["token_hash"] for r in rows} == {
        hashlib.sha256(t.encode()).hexdigest() for t in plain
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["token_hash"]) for r in rows)
    # the stored hash is no credential, the token is
    for row in rows:
        for guess in (row["token_hash"], "vw_" + row["token_hash"]):
            response = httpx.get(f"{server.url}/api/v1/events", headers=server.headers(guess))
            assert response.status_code == 401
    assert (
        httpx.get(f"{server.url}/api/v1/events", headers=server.headers(extra)).status_code == 200
    )


def test_login_is_rate_limited_per_address(lite: LiveServer) -> None:
    create_staff(lite.engine, STAFF_EMAIL, STAFF_PASSWORD)
    clock = [1_000_000]
    lite.app.state.login_limiter = LoginLimiter(clock=lambda: clock[0])
    with httpx.Client(base_url=lite.url) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None

        def attempt(email: str, password: str) -> int:
            form = {"email": email, "password": password, "csrf_token": token[1]}
            return client.post("/login", data=form).status_code

        # a spray over many accounts counts against the address
        codes = [attempt(f"user{i}@x.test", "wrong password") for i in range(10)]
        assert codes == [401] * 10
        assert attempt(STAFF_EMAIL, "wrong again") == 429  # the address now backs off
        assert attempt(STAFF_EMAIL, STAFF_PASSWORD) == 429  # even the right one waits
        assert client.get("/api/v1/events").status_code == 401
        clock[0] += 1_001  # the first back-off is one second
        assert attempt(STAFF_EMAIL, STAFF_PASSWORD) == 303
        assert client.get("/api/v1/events").status_code == 200


# --- the audit trail -----------------------------------------------------------------------------


def test_retries_and_acknowledgements_record_who_did_them(server: LiveServer) -> None:
    ctx, driver, artifact_id = _failed_artifact(server)
    alert_id = _raise_alert(server)
    alice = create_token(server.engine, scope="staff", name="alice-oncall")
    bob = create_token(server.engine, scope="staff", name="bob-oncall")
    before = now_ms()
    retried = httpx.post(
        f"{server.url}/api/v1/artifacts/{artifact_id}/retry",
        json={"stage": "transcription"},
        headers=server.headers(alice),
    )
    assert retried.status_code == 202, retried.text
    driver.drain()
    [attempt] = _rows(server.engine, retry_attempts)
    assert attempt["requested_by"] == "alice-oncall" and attempt["started_at"] >= before
    detail = httpx.get(
        f"{server.url}/api/v1/artifacts/{artifact_id}", headers=server.headers()
    ).json()
    assert [r["requested_by"] for r in detail["retries"]] == ["alice-oncall"]
    acked = httpx.post(
        f"{server.url}/api/v1/alerts/{alert_id}/acknowledge", headers=server.headers(bob)
    )
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"] == "bob-oncall"
    assert before <= acked.json()["acknowledged_at"] <= now_ms()
    # the first acknowledgement stands; a later one by someone else does not rewrite it
    again = httpx.post(
        f"{server.url}/api/v1/alerts/{alert_id}/acknowledge", headers=server.headers(alice)
    )
    assert again.status_code == 200 and again.json()["acknowledged_by"] == "bob-oncall"
    [alert] = _rows(server.engine, voice_pipeline_alerts)
    assert alert["acknowledged_by"] == "bob-oncall"
    listed = httpx.get(
        f"{server.url}/api/v1/alerts", params={"state": "all"}, headers=server.headers()
    ).json()["items"]
    assert [a["acknowledged_by"] for a in listed] == ["bob-oncall"]
    ctx.monitor.close(timeout=5)
    ctx.engine.dispose()
