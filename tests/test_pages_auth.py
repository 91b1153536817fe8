"""Login, logout, sessions and CSRF, over HTTP and in a real browser."""

from __future__ import annotations

import re

import httpx

from conftest import STAFF_EMAIL, STAFF_PASSWORD
from voicewatch.auth import create_staff
from voicewatch.web.login_limit import LoginLimiter


def _login_form(client: httpx.Client) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def test_login_sets_an_httponly_samesite_session(sqlite_server) -> None:
    create_staff(sqlite_server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    with httpx.Client(base_url=sqlite_server.url) as client:
        token = _login_form(client)
        response = client.post(
            "/login",
            data={
                "email": STAFF_EMAIL,
                "password": STAFF_PASSWORD,
                "csrf_token": token,
                "next": "/events",
            },
        )
        assert response.status_code == 303 and response.headers["location"] == "/events"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert client.get("/api/v1/events").status_code == 200  # the session reads the API


def test_wrong_password_and_missing_csrf_are_refused(sqlite_server) -> None:
    create_staff(sqlite_server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    with httpx.Client(base_url=sqlite_server.url) as client:
        token = _login_form(client)
        bad = client.post(
            "/login", data={"email": STAFF_EMAIL, "password": "nope", "csrf_token": token}
        )
        assert bad.status_code == 401 and "Wrong email or password" in bad.text
        no_csrf = client.post("/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD})
        assert no_csrf.status_code == 403
        assert client.get("/api/v1/events").status_code == 401


def test_login_is_rate_limited(sqlite_server) -> None:
    """Time stands still here (the limiter's clock is ours): on a loaded machine five
    argon2 checks can take longer than the first one-second back-off, and a real clock
    would let the sixth attempt through as a plain 401."""
    create_staff(sqlite_server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    sqlite_server.app.state.login_limiter = LoginLimiter(clock=lambda: 1_000_000)
    with httpx.Client(base_url=sqlite_server.url) as client:
        token = _login_form(client)
        codes = [
            client.post(
                "/login", data={"email": STAFF_EMAIL, "password": f"wrong{i}", "csrf_token": token}
            ).status_code
            for i in range(7)
        ]
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
        # even the right password waits now
        ok = client.post(
            "/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token}
        )
        assert ok.status_code == 429


def test_session_changes_need_the_csrf_token(sqlite_server) -> None:
    create_staff(sqlite_server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    with httpx.Client(base_url=sqlite_server.url) as client:
        token = _login_form(client)
        client.post(
            "/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token}
        )
        page = client.get("/login")
        session_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        url = "/api/v1/artifacts/art_unknown/retry"
        assert client.post(url, json={"stage": "full"}).status_code == 403
        with_token = client.post(
            url, json={"stage": "full"}, headers={"X-CSRF-Token": session_token}
        )
        assert with_token.status_code == 404  # past the CSRF check: the artifact is unknown


def test_open_redirects_are_refused(sqlite_server) -> None:
    create_staff(sqlite_server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    with httpx.Client(base_url=sqlite_server.url) as client:
        token = _login_form(client)
        response = client.post(
            "/login",
            data={
                "email": STAFF_EMAIL,
                "password": STAFF_PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/",
            },
        )
        assert response.headers["location"] == "/"


def test_browser_login_and_logout(staff_browser) -> None:
    page = staff_browser.page
    assert "/login" not in page.url
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    assert staff_browser.console_errors == []
