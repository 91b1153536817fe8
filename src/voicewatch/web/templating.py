"""Jinja2 set-up for the dashboard: one environment, the filters pages share, ``render``.

Autoescaping is on for every template, so event payloads, error messages and
names (all client-controlled) are shown as text, never run as HTML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from voicewatch import model
from voicewatch.clock import now_ms, to_datetime
from voicewatch.web.security import csrf_token, session_principal

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

#: The tabs, in order: (path, label). ``/artifacts/{id}`` lights up "Artifacts".
TABS: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/pipeline", "Pipeline"),
    ("/artifacts", "Artifacts"),
    ("/metrics", "Metrics"),
    ("/alerts", "Alerts"),
    ("/events", "Events"),
    ("/guards", "Guard rails"),
)

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
env = templates.env


def fmt_ts(ts_ms: int | None) -> str:
    """Epoch ms as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    if ts_ms is None:
        return "—"
    return to_datetime(int(ts_ms)).strftime("%Y-%m-%d %H:%M:%S")


def fmt_time(ts_ms: int | None) -> str:
    """Epoch ms as ``HH:MM:SS`` (UTC), for feeds and timelines."""
    if ts_ms is None:
        return "—"
    return to_datetime(int(ts_ms)).strftime("%H:%M:%S")


def fmt_ago(ts_ms: int | None) -> str:
    """How long ago, in the largest sensible unit."""
    if ts_ms is None:
        return "—"
    seconds = max(0, (now_ms() - int(ts_ms)) // 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def fmt_duration(ms: float | None) -> str:
    """Milliseconds as ``850 ms``, ``12.3 s`` or ``4.1 min``."""
    if ms is None:
        return "—"
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def fmt_money(usd: float | None) -> str:
    if usd is None:
        return "—"
    return f"${usd:.4f}" if 0 < usd < 0.01 else f"${usd:,.2f}"


def fmt_pct(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate * 100:.1f}%"


def path_segment(value: object) -> str:
    """An id as one URL path segment: ``/``, ``?``, ``#`` and ``%`` escaped.

    Jinja's ``urlencode`` keeps ``/``, so ``/artifacts/{{ id|urlencode }}`` with the
    id ``../../events`` would link to ``/events``; here it stays one segment.
    """
    return quote(str(value), safe="")


def event_kind(event_type: str) -> str:
    """The colour class of an event type (success / failure / warning / info)."""
    found = model.EVENT_TYPES_BY_NAME.get(event_type)
    return found.kind.value if found else "info"


env.filters.update(
    ts=fmt_ts,
    time=fmt_time,
    ago=fmt_ago,
    duration=fmt_duration,
    money=fmt_money,
    pct=fmt_pct,
    event_kind=event_kind,
    segment=path_segment,
    tojson_pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, default=str),
)
env.globals.update(TABS=TABS, EVENT_TYPES=model.EVENT_TYPES, STAGES=[s.value for s in model.Stage])


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render ``template`` with the request, the signed-in user and a CSRF token."""
    principal = getattr(request.state, "principal", None) or session_principal(request)
    full = {
        "request": request,
        "user": principal.name if principal else None,
        "csrf_token": csrf_token(request),
        "path": request.url.path,
        **context,
    }
    return templates.TemplateResponse(request, template, full, status_code=status_code)
