"""``aggregate``, ``cleanup``, ``check-health``: the periodic jobs, run by hand."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from voicewatch.cli.base import app, engine_of, one_line_errors, settings_of


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
