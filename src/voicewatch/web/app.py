"""The FastAPI application: one place that wires settings, the store and the routers."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.middleware.sessions import SessionMiddleware

from voicewatch import __version__
from voicewatch.config import Settings
from voicewatch.store import open_store
from voicewatch.web import (
    api_alerts,
    api_artifacts,
    api_coach,
    api_docs,
    api_events,
    api_guards,
    api_health,
    api_metrics,
    api_otlp,
    api_stream,
    pages_auth,
    pages_coach,
    pages_data,
    pages_guards,
    pages_live,
)
from voicewatch.web.assets import check_vendor_assets
from voicewatch.web.body_limit import BodyLimit
from voicewatch.web.early_auth import EarlyAuth
from voicewatch.web.error_handlers import install_error_handlers
from voicewatch.web.group_commit import GroupCommit
from voicewatch.web.headers import SecurityHeaders
from voicewatch.web.hosts import TrustedHosts
from voicewatch.web.login_limit import LoginLimiter
from voicewatch.web.nul_guard import NulGuard
from voicewatch.web.responses import contract_error_schemas
from voicewatch.web.security import SESSION_COOKIE
from voicewatch.web.templating import STATIC_DIR
from voicewatch.web.write_gate import WriteGate


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app; migrates the database on first start unless an engine is handed in."""
    settings = settings or Settings.from_env()
    check_vendor_assets()  # never serve pages whose scripts are missing
    if engine is None:
        engine = open_store(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    app = FastAPI(
        title="voicewatch",
        version=__version__,
        description="Monitoring harness for the voice-note pipeline.",
        openapi_url=None,  # served by api_docs, for staff only
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.login_limiter = LoginLimiter()
    app.state.write_gate = WriteGate(engine, settings.sqlite_busy_timeout_ms / 1000)
    app.state.group_commit = GroupCommit(engine, app.state.write_gate)
    app.state.secret_key = settings.secret_key or secrets.token_urlsafe(32)
    _add_middleware(app, settings)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    install_error_handlers(app)
    for router in (
        api_health.router,
        api_events.router,
        api_otlp.router,
        api_artifacts.router,
        api_coach.router,  # the coach loop
        api_metrics.router,
        api_alerts.router,
        api_guards.router,
        api_docs.router,
        api_stream.router,
        pages_auth.router,
        pages_coach.router,  # the coach loop
        pages_live.router,
        pages_data.router,
        pages_guards.router,
    ):
        app.include_router(router)
    _describe_our_errors(app)
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """Innermost first. From the outside in, a request meets: the security headers
    (on every answer, errors too), the body cap and timer (before anything reads),
    the Host check, the NUL guard, the session, and the early auth of large-body routes.
    """
    app.add_middleware(EarlyAuth)
    app.add_middleware(
        SessionMiddleware,
        secret_key=app.state.secret_key,
        session_cookie=SESSION_COOKIE,
        same_site="lax",
        https_only=settings.secure_cookies,
        max_age=12 * 3600,
    )
    app.add_middleware(NulGuard)
    hosts = settings.host_list()
    if hosts:
        app.add_middleware(TrustedHosts, allowed=hosts)
    app.add_middleware(
        BodyLimit,
        events_max_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookies)


def _describe_our_errors(app: FastAPI) -> None:
    """Generate /openapi.json with the error body we send, not FastAPI's default 422."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract_error_schemas(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
