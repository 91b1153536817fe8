"""The ``voicewatch`` command: thin loops over library calls (see CONTRACT.md).

Exit codes: 0 on success, 2 on bad usage, 1 on failure with a one-line error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from sqlalchemy import Engine
from typer.exceptions import TyperException

from voicewatch.config import Settings
from voicewatch.model import TokenScope

app = typer.Typer(
    name="voicewatch",
    help="voicewatch: the voice-note pipeline for coaches and the harness that watches it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """Print a one-line error and exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def one_line_errors(func: F) -> F:
    """Turn any unexpected exception into ``error: ...`` on one line and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.ClickException, KeyboardInterrupt):
            raise
        except TyperException:  # typer's own usage errors: exit code 2, its own message
            raise
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            fail(f"{first_line[:300]}")

    return wrapper  # type: ignore[return-value]


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (env VOICEWATCH_DATABASE_URL)."),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", help="Task queue URL (env VOICEWATCH_QUEUE_URL)."),
    ] = None,
) -> None:
    """Global options shared by every command."""
    import os

    from voicewatch.store import write_stats

    write_stats.name_process(ctx.invoked_subcommand or "voicewatch")
    ctx.obj = Settings.from_env(database_url=db, queue_url=queue)
    # Worker processes and the task module read these, so the flags must reach them.
    os.environ["VOICEWATCH_DATABASE_URL"] = ctx.obj.database_url
    os.environ["VOICEWATCH_QUEUE_URL"] = ctx.obj.queue_url


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.obj  # type: ignore[no-any-return]


def engine_of(ctx: typer.Context) -> Engine:
    from voicewatch.store import open_store

    settings = settings_of(ctx)
    return open_store(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)


@app.command()
@one_line_errors
def migrate(ctx: typer.Context) -> None:
    """Create or upgrade the schema.

    Example: voicewatch --db postgresql://postgres@127.0.0.1/voicewatch migrate
    """
    engine_of(ctx)
    typer.echo("schema is up to date")


@app.command("create-token")
@one_line_errors
def create_token(
    ctx: typer.Context,
    scope: Annotated[
        TokenScope,
        typer.Option(help="ingest (send only), staff (read too), or coach (one coach's inbox)."),
    ],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
    coach: Annotated[
        str | None, typer.Option("--coach", help="Coach tokens: the coach's user id.")
    ] = None,
) -> None:
    """Print a new API token once, alone on the last line.

    Example: voicewatch create-token --scope coach --coach coach_hrc_1 --name "J. Murphy app"
    """
    from voicewatch.auth import create_token as make_token

    token = make_token(engine_of(ctx), scope=scope.value, name=name, coach=coach)
    typer.echo(f"created a {scope.value} token; it is shown only once:")
    typer.echo(token)


@app.command("list-tokens")
@one_line_errors
def list_tokens(ctx: typer.Context) -> None:
    """List API tokens: id, name, scope, created, last used, revoked (never the secret).

    Example: voicewatch list-tokens
    """
    from voicewatch.auth import list_tokens as all_tokens
    from voicewatch.clock import to_datetime

    def when(ms: Any) -> str:
        return "-" if ms is None else to_datetime(int(ms)).strftime("%Y-%m-%dT%H:%M:%SZ")

    typer.echo("id\tname\tscope\tcreated\tlast_used\trevoked")
    for row in all_tokens(engine_of(ctx)):
        typer.echo(
            f"{row['id']}\t{row['name']}\t{row['scope']}\t{when(row['created_at'])}"
            f"\t{when(row['last_used_at'])}\t{when(row['revoked_at'])}"
        )


@app.command("revoke-token")
@one_line_errors
def revoke_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name (see list-tokens).")],
) -> None:
    """Revoke every live token with this name; it answers 401 from the next request.

    Example: voicewatch revoke-token pipeline
    """
    from voicewatch.auth import revoke_token as revoke

    count = revoke(engine_of(ctx), name)
    if not count:
        raise ValueError(f"no live token is named {name!r}")
    typer.echo(f"revoked {count} token(s) named {name}")


@app.command("remove-staff")
@one_line_errors
def remove_staff(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The staff member's email.")],
) -> None:
    """Delete a staff account; its signed-in sessions end at once.

    Example: voicewatch remove-staff ops@club.example
    """
    from voicewatch.auth import remove_staff as remove

    if not remove(engine_of(ctx), email):
        raise ValueError(f"no staff account {email}")
    typer.echo(f"removed staff account {email}; its sessions have ended")


@app.command("create-staff")
@one_line_errors
def create_staff(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The staff member's email (their login).")],
    password: Annotated[
        str | None, typer.Option(help="At least 8 characters; asked for when omitted.")
    ] = None,
) -> None:
    """Create a platform-staff account (or reset its password).

    Example: voicewatch create-staff ops@club.example --password 'long passphrase'
    """
    from voicewatch.auth import create_staff as make_staff

    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    user_id = make_staff(engine_of(ctx), email, password)
    typer.echo(f"staff account {email} ready ({user_id})")


@app.command()
@one_line_errors
def ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON lines, one event per line.")],
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """Load events from a JSON-lines file, with a progress bar.

    Bad lines are reported by line number; every good line lands.
    Example: voicewatch ingest events.jsonl
    """
    from voicewatch.ingest_file import ingest_jsonl

    if not file.is_file():
        fail(f"no such file: {file}")
    report = ingest_jsonl(engine_of(ctx), file, batch_size=batch_size, progress=True)
    for line_no, error in report.errors[:20]:
        typer.echo(f"line {line_no}: {error}", err=True)
    if len(report.errors) > 20:
        typer.echo(f"... and {len(report.errors) - 20} more bad lines", err=True)
    typer.echo(
        f"accepted {report.accepted}, duplicates {report.duplicates}, "
        f"rejected {len(report.errors)} (of {report.lines} lines)"
    )
    if report.lines and report.accepted + report.duplicates == 0:
        raise typer.Exit(1)


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

    from voicewatch.pipeline.runtime import build_context
    from voicewatch.web.app import create_app
    from voicewatch.web.serving import server_options

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


org_app = typer.Typer(help="Organizations (clubs).", no_args_is_help=True)
roster_app = typer.Typer(help="Club rosters.", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(roster_app, name="roster")
coach_app = typer.Typer(help="Coaches (people with a name and a club).", no_args_is_help=True)
app.add_typer(coach_app, name="coach")


@org_app.command("create")
@one_line_errors
def org_create(
    ctx: typer.Context,
    organization_id: Annotated[str, typer.Argument(help="A short stable id, e.g. org_clg.")],
    name: Annotated[str, typer.Option("--name", help="The club's name.")],
) -> None:
    """Add an organization (idempotent: renames it if it exists).

    Example: voicewatch org create org_clg --name "Clonmore GAA"
    """
    from voicewatch.pipeline.repository import upsert_organization

    created = upsert_organization(engine_of(ctx), organization_id, name)
    typer.echo(f"{'created' if created else 'renamed'} {organization_id}: {name}")


@roster_app.command("import")
@one_line_errors
def roster_import(
    ctx: typer.Context,
    organization_id: Annotated[str, typer.Argument(help="The organization's id.")],
    file: Annotated[Path, typer.Argument(help="CSV with columns name, team[, aliases].")],
) -> None:
    """Load a club's roster from CSV; re-import updates, never duplicates.

    Example: voicewatch roster import org_clg roster.csv
    """
    from voicewatch.pipeline.repository import import_roster

    if not file.is_file():
        fail(f"no such file: {file}")
    report = import_roster(engine_of(ctx), organization_id, file)
    for line_no, error in report.errors:
        typer.echo(f"line {line_no}: {error}", err=True)
    typer.echo(
        f"added {report.added}, updated {report.updated}, aliases {report.aliases}, "
        f"bad rows {len(report.errors)}"
    )


@coach_app.command("add")
@one_line_errors
def coach_add(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The coach's user id, e.g. coach_hrc_1.")],
    org: Annotated[str, typer.Option("--org", help="The coach's organization id.")],
    name: Annotated[str, typer.Option("--name", help="The coach's full name.")],
    email: Annotated[
        str | None, typer.Option("--email", help="To sign in to the inbox page.")
    ] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="With --email (asked if left out).")
    ] = None,
) -> None:
    """Add a coach, or rename one (idempotent); --email lets the coach sign in.

    Example: voicewatch coach add coach_hrc_1 --org org_hrc --name "Jim Murphy"
    """
    from voicewatch.coaching.people import add_coach, set_coach_login

    engine = engine_of(ctx)
    outcome = add_coach(engine, user_id, org, name)
    typer.echo(f"{outcome} {user_id}: {name.strip()} ({org})")
    if email:
        if password is None:
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        set_coach_login(engine, user_id.strip(), email, password)
        typer.echo(f"{user_id} signs in as {email.strip().lower()}")


@coach_app.command("import")
@one_line_errors
def coach_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with columns user_id, name[, organization].")],
    org: Annotated[
        str | None, typer.Option("--org", help="The organization of rows without one.")
    ] = None,
) -> None:
    """Load coaches from CSV beside the roster; bad rows are reported by line.

    Example: voicewatch coach import coaches.csv --org org_clg
    """
    from voicewatch.coaching.people import import_coaches

    if not file.is_file():
        fail(f"no such file: {file}")
    report = import_coaches(engine_of(ctx), file, org)
    for line_no, error in report.errors:
        typer.echo(f"line {line_no}: {error}", err=True)
    typer.echo(
        f"added {report.added}, renamed {report.renamed}, unchanged {report.unchanged}, "
        f"bad rows {len(report.errors)}"
    )


@app.command()
@one_line_errors
def submit(
    ctx: typer.Context,
    org: Annotated[str, typer.Option("--org", help="The organization's id.")],
    coach: Annotated[str, typer.Option("--coach", help="The coach's user id.")],
    text: Annotated[str | None, typer.Option("--text", help="A text note.")] = None,
    audio: Annotated[Path | None, typer.Option("--audio", help="A voice note file.")] = None,
    channel: Annotated[str, typer.Option("--channel", help="whatsapp or app.")] = "app",
) -> None:
    """Send one voice note through the pipeline; prints the artifact id.

    Example: voicewatch submit --org org_clg --coach coach_1 --text "Sean hurt his ankle"
    """
    from voicewatch.pipeline import runtime
    from voicewatch.pipeline.audio_store import store_upload
    from voicewatch.pipeline.intake import submit_note

    if (text is None) == (audio is None):
        raise typer.BadParameter("give exactly one of --text and --audio")
    if channel not in ("whatsapp", "app"):
        raise typer.BadParameter("must be whatsapp or app", param_hint="--channel")
    engine_of(ctx)
    pipeline = runtime.context()
    audio_path = None
    if audio is not None:
        if not audio.is_file():
            fail(f"no such file: {audio}")
        audio_path = str(store_upload(settings_of(ctx), audio.name, audio.read_bytes()))
    artifact = submit_note(
        pipeline,
        organization_id=org,
        coach_user_id=coach,
        source_channel=channel,
        text=text,
        audio_path=audio_path,
    )
    if pipeline.monitor is not None:
        pipeline.monitor.flush(timeout=10)
    typer.echo(artifact["artifact_id"])


class Period(StrEnum):
    hourly = "hourly"
    daily = "daily"


@app.command()
@one_line_errors
def aggregate(
    ctx: typer.Context,
    period: Annotated[Period, typer.Argument(help="hourly or daily")],
    at: Annotated[str | None, typer.Option("--at", help="ISO 8601: the period holding it.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="ISO 8601 start of a backfill.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO 8601 end of a backfill.")] = None,
) -> None:
    """Build snapshots (idempotent; a range backfills). Without options: the
    previous hour/day plus any missed.

    Example: voicewatch aggregate hourly --from 2026-11-20T00:00Z --to 2026-11-21T00:00Z
    """
    from voicewatch import metrics
    from voicewatch.clock import DAY_MS, HOUR_MS, parse_iso_ms, to_iso

    engine = engine_of(ctx)
    step = HOUR_MS if period is Period.hourly else DAY_MS
    if (start is None) != (end is None):
        raise typer.BadParameter("give both --from and --to")
    try:
        if start is not None and end is not None:
            first, last = parse_iso_ms(start), parse_iso_ms(end)
        elif at is not None:
            first = parse_iso_ms(at)
            first, last = first - first % step, first - first % step + 1
        else:
            first = last = 0
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {exc}") from exc
    if start is None and at is None:
        done = (metrics.catch_up_hours if period is Period.hourly else metrics.catch_up_days)(
            engine
        )
        typer.echo(
            f"aggregated {len(done)} {period.value} period(s): "
            + ", ".join(to_iso(p) for p in done)
        )
        return
    if last <= first:
        raise typer.BadParameter("--to must be after --from")
    rows = metrics.aggregate_range(engine, first, last, period.value)
    typer.echo(f"wrote {rows} {period.value} snapshot rows from {to_iso(first - first % step)}")


@app.command()
@one_line_errors
def cleanup(ctx: typer.Context) -> None:
    """Apply retention (events, hourly and daily snapshots older than their cutoffs).

    Example: VOICEWATCH_EVENT_RETENTION_DAYS=14 voicewatch cleanup
    """
    from voicewatch import metrics

    settings = settings_of(ctx)
    deleted = metrics.cleanup(
        engine_of(ctx),
        event_days=settings.event_retention_days,
        hourly_days=settings.hourly_retention_days,
        daily_days=settings.daily_retention_days,
    )
    typer.echo("deleted " + ", ".join(f"{n} {kind}" for kind, n in deleted.items()))


@app.command("check-health")
@one_line_errors
def check_health(ctx: typer.Context) -> None:
    """Run the alert rules once; prints raised and resolved alerts.

    Example: voicewatch check-health
    """
    from voicewatch import alerts
    from voicewatch.alerts import notify

    report = alerts.check_health(engine_of(ctx), thresholds=settings_of(ctx).alert_thresholds)
    for line in report.lines():
        typer.echo(line)
    notify.default_notifier().flush(timeout=10)


@app.command()
@one_line_errors
def simulate(
    ctx: typer.Context,
    artifacts: Annotated[int, typer.Option("--artifacts", min=1, max=1_000_000)] = 20,
    failure_rate: Annotated[float, typer.Option("--failure-rate", min=0.0, max=1.0)] = 0.0,
    audio_share: Annotated[float, typer.Option("--audio-share", min=0.0, max=1.0)] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Random seed, for repeatable runs.")] = None,
) -> None:
    """Seed demo clubs if absent and queue N realistic notes through the pipeline.

    Example: voicewatch simulate --artifacts 200 --failure-rate 0.1 --audio-share 0.2
    """
    import random

    from rich.progress import Progress

    from voicewatch.pipeline import runtime
    from voicewatch.simulate import simulate_notes

    engine_of(ctx)
    pipeline = runtime.context()
    with Progress(transient=True) as bar:
        task = bar.add_task("queueing notes", total=artifacts)
        ids = simulate_notes(
            pipeline,
            settings_of(ctx),
            artifacts=artifacts,
            failure_rate=failure_rate,
            audio_share=audio_share,
            rng=random.Random(seed),
            on_progress=lambda: bar.advance(task),
        )
    if pipeline.monitor is not None:
        pipeline.monitor.flush(timeout=30)
    typer.echo(f"queued {len(ids)} notes; run 'voicewatch worker' to process them")


@app.command()
@one_line_errors
def worker(
    ctx: typer.Context,
    no_periodic: Annotated[
        bool, typer.Option("--no-periodic", help="Do not run the periodic jobs here.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker threads.")] = 2,
) -> None:
    """Run queued pipeline stages, retries and (unless --no-periodic) the periodic jobs.

    Example: voicewatch --queue redis://127.0.0.1:6379/0 worker --workers 4
    """
    import logging

    from huey.consumer import Consumer

    from voicewatch.pipeline import runtime
    from voicewatch.tasks import huey

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("huey").setLevel(logging.WARNING)  # one line per task is noise
    # Migrate (once, under the store's lock) and build the context before the
    # first task, so the worker threads never race to do either.
    runtime.install(runtime.build_context(settings_of(ctx), engine=engine_of(ctx)))
    typer.echo(f"worker: {workers} threads on {settings_of(ctx).queue_url}")
    # An idle worker polls the SQLite queue at most 1 s apart (Huey's default
    # backs off to 10 s, which a note or a retried task would wait out); Redis
    # blocks on the queue instead and is not affected.
    Consumer(
        huey, workers=workers, worker_type="thread", periodic=not no_periodic, max_delay=1.0
    ).run()


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
