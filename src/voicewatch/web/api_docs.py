"""``/openapi.json`` and ``/docs``, for staff only, served without any CDN asset."""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from voicewatch.auth import Principal
from voicewatch.web.deps import require_staff

router = APIRouter(tags=["docs"])


@router.get("/openapi.json", include_in_schema=False)
def openapi_json(request: Request, _p: Annotated[Principal, Depends(require_staff)]) -> Any:
    return request.app.openapi()


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
def docs(request: Request, _p: Annotated[Principal, Depends(require_staff)]) -> str:
    """A plain reference of every route, rendered from the OpenAPI description."""
    spec = request.app.openapi()
    rows = []
    for path, operations in sorted(spec.get("paths", {}).items()):
        for method, op in operations.items():
            params = ", ".join(escape(p["name"]) for p in op.get("parameters", []))
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}"
                f"</code></td><td>{escape(op.get('summary', ''))}</td><td>{params}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>voicewatch API</title>"
        "<link rel='stylesheet' href='/static/docs.css'></head><body><h1>voicewatch API</h1>"
        "<p>The machine-readable description is at <a href='/openapi.json'>/openapi.json</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
