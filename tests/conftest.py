"""Shared fixtures: real SQLite and real PostgreSQL stores, a real server.

Every store test takes the ``engine`` fixture, which is parametrised over
SQLite and PostgreSQL (``VOICEWATCH_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``). When PostgreSQL cannot be
reached, its tests fail under CI and are skipped, loudly, elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from guards import Recorder
from private_services import private_postgres, private_redis  # noqa: F401  (fixtures)
from services import unavailable
from voicewatch.store import make_engine, migrate
from voicewatch.store.tables import metadata
from workers import WORKER, ensure_postgres_database, per_worker_postgres_url, per_worker_redis_url

BASE_POSTGRES_URL = os.environ.get(
    "VOICEWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
POSTGRES_URL = per_worker_postgres_url(BASE_POSTGRES_URL, WORKER)
REDIS_URL = per_worker_redis_url(
    os.environ.get("VOICEWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), WORKER
)


def _postgres_available() -> str | None:
    try:
        ensure_postgres_database(BASE_POSTGRES_URL, POSTGRES_URL)
        engine = make_engine(POSTGRES_URL, pool=False)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"{type(exc).__name__}: {exc}"


def require_postgres() -> None:
    """Fail under CI, skip elsewhere, when PostgreSQL is not reachable."""
    problem = _postgres_available()
    if problem:
        unavailable(f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem})")


def reset_postgres(url: str = POSTGRES_URL) -> Engine:
    """Drop every voicewatch table in the PostgreSQL test database and migrate afresh."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    return engine


def truncate_all(engine: Engine) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


@pytest.fixture(scope="session")
def _postgres_engine() -> Iterator[Engine | None]:
    if _postgres_available():
        yield None
        return
    engine = reset_postgres()
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: a new SQLite file, or the cleared PostgreSQL test DB."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'voicewatch.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return
    require_postgres()
    pg = request.getfixturevalue("_postgres_engine")
    truncate_all(pg)
    yield POSTGRES_URL


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` (SQLite and PostgreSQL)."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database URL only (for tests of the embedded default)."""
    url = f"sqlite:///{tmp_path / 'voicewatch.db'}"
    eng = make_engine(url)
    migrate(eng)
    eng.dispose()
    return url


# --- a real server over HTTP ------------------------------------------------------


class LiveServer:
    """A voicewatch server on a random loopback port, run by uvicorn in a thread."""

    def __init__(self, db_url: str, **settings: object) -> None:
        import socket
        import threading

        import uvicorn

        from voicewatch.auth import create_token
        from voicewatch.config import Settings
        from voicewatch.web.app import create_app
        from voicewatch.web.serving import server_options

        self.settings = Settings(database_url=db_url, **settings)  # type: ignore[arg-type]
        self.app = create_app(self.settings)
        self.engine: Engine = self.app.state.engine
        self.staff_token = create_token(self.engine, scope="staff", name="test staff")
        self.ingest_token = create_token(self.engine, scope="ingest", name="test ingest")
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", **server_options(self.settings)
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        import time

        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.staff_token}"}

    def stop(self) -> None:
        """Stop serving; close the pipeline context the app built on first use, if any."""
        pipeline = getattr(self.app.state, "pipeline", None)
        if pipeline is not None:  # built by the first note (or decision) the server took
            pipeline.monitor.close(timeout=5)
            pipeline.engine.dispose()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        self.engine.dispose()


@pytest.fixture
def live_server(db_url: str) -> Iterator[LiveServer]:
    """A real server over HTTP on SQLite and on PostgreSQL."""
    server = LiveServer(db_url)
    yield server
    server.stop()


# --- a real browser ------------------------------------------------------------------

STAFF_EMAIL = "staff@voicewatch.test"
STAFF_PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    exe = chromium_path()
    if exe is None:
        unavailable("Chromium is not installed (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=exe, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


#: Reports each CSP violation on the console, so the browser tests' "no console error"
#: checks also mean "no CSP violation".
CSP_REPORTER = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));
});
"""


def _function_form(wait_for_function: Any) -> Any:
    """``page.wait_for_function`` taking expressions as ``() => (expr)``.

    Playwright polls a bare expression string through ``eval``, which our CSP
    (no 'unsafe-eval') refuses; the same test written as a function needs no eval.
    """

    def wait(expression: str, **kwargs: Any) -> Any:
        if not expression.lstrip().startswith(("(", "function", "async")):
            expression = f"() => ({expression})"
        return wait_for_function(expression, **kwargs)

    return wait


class BrowserSession:
    """A signed-in staff browser page on a live server, collecting console errors."""

    def __init__(self, browser: object, server: LiveServer) -> None:
        from voicewatch.auth import create_staff

        create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
        self.server = server
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page.on(
            "console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text)
        )
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        # every Content-Security-Policy violation becomes a console error too (issue 16)
        self.context.add_init_script(CSP_REPORTER)
        self.page.wait_for_function = _function_form(self.page.wait_for_function)  # type: ignore[method-assign]

    def login(self, email: str = STAFF_EMAIL, password: str = STAFF_PASSWORD) -> None:
        self.page.goto(f"{self.server.url}/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def goto(self, path: str) -> object:
        return self.page.goto(f"{self.server.url}{path}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def sqlite_server(sqlite_url: str) -> Iterator[LiveServer]:
    """A real server on SQLite only (browser tests need one database, not both)."""
    server = LiveServer(sqlite_url)
    yield server
    server.stop()


@pytest.fixture
def staff_browser(browser: object, sqlite_server: LiveServer) -> Iterator[BrowserSession]:
    """A signed-in staff session in Chromium against a live SQLite-backed server."""
    session = BrowserSession(browser, sqlite_server)
    session.login()
    yield session
    session.close()


@pytest.fixture
def recorded() -> Recorder:
    """A fresh recording ``emit()`` for a guard under test (breaker, budgets, rate limits)."""
    return Recorder()
