"""``serve``, ``demo``, ``get``: the web app, served or called in-process."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from voicewatch.cli.base import app, one_line_errors, settings_of


@app.command()
@one_line_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the dashboard and the JSON API.

    Example: voicewatch serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from voicewatch.web.app import create_app
    from voicewatch.web.serving import server_options
    from voicewatch.worker import build_context

    settings = settings_of(ctx)
    web = create_app(settings)  # migrates the store (once, under its lock) before listening
    # Built before the first request, so a burst of submissions right after
    # start finds it ready (``api_artifacts`` would otherwise build it, once).
    web.state.pipeline = build_context(settings, engine=web.state.engine)
    uvicorn.run(web, host=host, port=port, log_level="info", **server_options(settings))


@app.command()
@one_line_errors
def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    rate: Annotated[float, typer.Option(help="Simulated notes per second.")] = 1.0,
) -> None:
    """Serve a seeded database with simulated traffic, and print the URL and a login.

    Example: voicewatch demo --port 8000
    """
    from voicewatch.demo import run_demo

    run_demo(settings_of(ctx), port=port, rate=rate)


@app.command()
@one_line_errors
def get(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="An API path, e.g. /api/v1/metrics/realtime")],
) -> None:
    """Call the API in-process as staff, without a server, and print the JSON.

    Example: voicewatch get /api/v1/events?limit=5
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from voicewatch.auth import Principal
    from voicewatch.model import TokenScope
    from voicewatch.web.app import create_app

    settings = settings_of(ctx)
    web = create_app(settings)

    @web.middleware("http")
    async def _as_staff(request: Any, call_next: Any) -> Any:
        request.state.principal = Principal("cli", TokenScope.STAFF, "cli")
        return await call_next(request)

    with TestClient(web) as client:
        response = client.get(path)
    typer.echo(
        json.dumps(response.json(), indent=2)
        if "json" in response.headers.get("content-type", "")
        else response.text
    )
    if response.status_code >= 400:
        raise typer.Exit(1)
