"""Login throttling: per address (from the socket), per account, with a back-off the
owner outlasts, and a known device that a shared address cannot lock out (issue 16, item 2).

Time is the limiter's clock, moved by the test; nothing sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import STAFF_EMAIL, STAFF_PASSWORD, LiveServer
from voicewatch.auth import create_staff
from voicewatch.config import Settings
from voicewatch.web.login_limit import FREE_PER_ACCOUNT, FREE_PER_ADDRESS, LoginLimiter
from voicewatch.web.serving import server_options


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def throttled(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Clock]]:
    server = LiveServer(sqlite_url, queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    clock = Clock()
    server.app.state.login_limiter = LoginLimiter(clock=clock)
    create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    yield server, clock
    server.stop()


class Browser:
    """One client with its own cookies (and its own CSRF token)."""

    def __init__(self, server: LiveServer) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=10)
        page = self.client.get("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match is not None
        self.csrf = match[1]

    def login(self, email: str, password: str, **headers: str) -> httpx.Response:
        form = {"email": email, "password": password, "csrf_token": self.csrf}
        return self.client.post("/login", data=form, headers=headers)

    def close(self) -> None:
        self.client.close()


def test_uvicorn_trusts_no_forwarding_header_by_default() -> None:
    assert server_options(Settings())["proxy_headers"] is False
    assert server_options(Settings())["forwarded_allow_ips"] == ""
    behind = server_options(Settings(trusted_proxies="10.0.0.5, 10.0.1.0/24"))
    assert behind["proxy_headers"] is True
    assert behind["forwarded_allow_ips"] == "10.0.0.5,10.0.1.0/24"


def test_rotating_x_forwarded_for_from_loopback_is_still_throttled(
    throttled: tuple[LiveServer, Clock],
) -> None:
    server, _ = throttled
    browser = Browser(server)
    codes = [
        browser.login(
            f"user{i}@x.test", "wrong", **{"X-Forwarded-For": f"203.0.113.{i}"}
        ).status_code
        for i in range(20)
    ]
    browser.close()
    assert codes[:FREE_PER_ADDRESS] == [401] * FREE_PER_ADDRESS
    assert set(codes[FREE_PER_ADDRESS:]) == {429}, codes
    print(f"\n20 wrong passwords, 20 X-Forwarded-For values: {codes.count(429)} answered 429")


def test_the_account_throttle_holds_across_addresses(
    throttled: tuple[LiveServer, Clock],
) -> None:
    """Guesses at one account from ever new addresses meet the same back-off."""
    server, _clock = throttled
    limiter: LoginLimiter = server.app.state.login_limiter
    for i in range(FREE_PER_ACCOUNT):  # as if from five different machines
        limiter.fail(limiter.keys(f"198.51.100.{i}", STAFF_EMAIL, known_device=False))
    fresh = Browser(server)  # a sixth client, from an address with no failures
    try:
        assert fresh.login(STAFF_EMAIL, "wrong").status_code == 429
        assert fresh.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 429
        waited = fresh.login(STAFF_EMAIL, STAFF_PASSWORD)
        assert int(waited.headers["retry-after"]) >= 1
        # another account from the same address is not affected
        create_staff(server.engine, "other@voicewatch.test", STAFF_PASSWORD)
        assert fresh.login("other@voicewatch.test", STAFF_PASSWORD).status_code == 303
    finally:
        fresh.close()


def test_the_back_off_doubles_and_the_owner_gets_in_after_it(
    throttled: tuple[LiveServer, Clock],
) -> None:
    server, clock = throttled
    attacker = Browser(server)
    waits = []
    for _ in range(FREE_PER_ACCOUNT + 3):
        answer = attacker.login(STAFF_EMAIL, "guess")
        if answer.status_code == 429:
            waits.append(int(answer.headers["retry-after"]))
            clock.now += int(answer.headers["retry-after"]) * 1000
            assert attacker.login(STAFF_EMAIL, "guess").status_code == 401
    attacker.close()
    assert waits == [1, 2, 4], waits  # each failure past the free ones doubles the wait
    owner = Browser(server)
    try:
        assert owner.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 429
        clock.now += 8_000
        signed_in = owner.login(STAFF_EMAIL, STAFF_PASSWORD)
        assert signed_in.status_code == 303
        assert owner.client.get("/api/v1/events").status_code == 200
    finally:
        owner.close()


def test_a_known_device_is_not_locked_out_by_a_shared_address(
    throttled: tuple[LiveServer, Clock],
) -> None:
    """Someone on the same (office, NAT) address fails many times, at the owner's account
    too; the owner's browser, which signed in before, still gets in at once."""
    server, _ = throttled
    owner = Browser(server)
    assert owner.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 303
    owner.client.post("/logout", data={"csrf_token": _page_csrf(owner)})
    neighbour = Browser(server)
    for i in range(15):
        neighbour.login(f"user{i}@x.test", "wrong")
        neighbour.login(STAFF_EMAIL, "wrong")
    assert neighbour.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 429
    neighbour.close()
    owner.csrf = _fresh_csrf(owner)
    try:
        assert owner.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 303
        # a device cookie is only good for its own account
        owner.csrf = _page_csrf(owner)
        assert owner.login("user1@x.test", "wrong").status_code == 429
    finally:
        owner.close()


def _page_csrf(browser: Browser) -> str:
    page = browser.client.get("/")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert match is not None
    return match[1]


def _fresh_csrf(browser: Browser) -> str:
    page = browser.client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    return match[1]
