"""``voicewatch budget|ratelimit|breaker``: the guard rails from the command line.

Thin loops over ``guardrails`` (changes, audited as actor ``cli:<user>``) and
``guard_figures`` (what is set and where today stands).
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from voicewatch.cli.base import app, engine_of, one_line_errors, settings_of
from voicewatch.clock import now_ms, to_iso

budget_app = typer.Typer(help="Daily AI budgets per organization (and platform-wide).")
ratelimit_app = typer.Typer(help="AI-call rate limits per organization and service.")
breaker_app = typer.Typer(help="The circuit breaker of each AI service.")


app.add_typer(budget_app, name="budget", no_args_is_help=True)
app.add_typer(ratelimit_app, name="ratelimit", no_args_is_help=True)
app.add_typer(breaker_app, name="breaker", no_args_is_help=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"


def _usd(amount: float) -> str:
    return f"${amount:,.4f}" if 0 < amount < 0.01 else f"${amount:,.2f}"


@budget_app.command("set")
@one_line_errors
def budget_set(
    ctx: typer.Context,
    organization: Annotated[str, typer.Argument(help="An organization id, or 'platform'.")],
    daily_usd: Annotated[float, typer.Option("--daily-usd", help="Daily budget in USD.")],
    warn_at: Annotated[
        float, typer.Option("--warn-at", help="Warn at this share of the budget.")
    ] = 0.8,
) -> None:
    """Give an organization (or the whole platform) a daily AI budget in USD.

    Example: voicewatch budget set org_clg --daily-usd 5 --warn-at 0.8
    """
    from voicewatch.guardrails import set_budget

    row = set_budget(engine_of(ctx), organization, daily_usd, warn_at, actor=_actor(), now=now_ms())
    typer.echo(
        f"{row['organization_id']}: {_usd(row['daily_budget_usd'])} a day, warn at"
        f" {row['warn_at']:.0%}; spent today {_usd(row['spend_usd'])} ({row['state']})"
    )


@budget_app.command("show")
@one_line_errors
def budget_show(ctx: typer.Context) -> None:
    """Every budget with today's (UTC) spend, its share and its state.

    Example: voicewatch budget show
    """
    from voicewatch.metrics.guards import budgets, cost_model

    rows = budgets(engine_of(ctx), now_ms())
    if not rows:
        typer.echo("no budgets set (voicewatch budget set ORG --daily-usd X)")
    for r in rows:
        typer.echo(
            f"{r['organization_id']:<24} {_usd(r['spend_usd']):>10} of"
            f" {_usd(r['daily_budget_usd']):>9}  {r['share']:>5.0%}  warn at"
            f" {r['warn_at']:.0%}  {r['state']}"
        )
    if cost_model(settings_of(ctx))["estimated"]:
        typer.echo("(offline models are priced by the estimated cost model)")


@ratelimit_app.command("set")
@one_line_errors
def ratelimit_set(
    ctx: typer.Context,
    organization: Annotated[str, typer.Argument(help="An organization id, or '*' for all.")],
    per_minute: Annotated[
        int | None, typer.Option("--per-minute", min=0, help="AI calls allowed per minute.")
    ] = None,
    service: Annotated[
        str, typer.Option("--service", help="transcription, claims, or '*' for both.")
    ] = "*",
    default: Annotated[
        bool, typer.Option("--default", help="Remove the override: the default applies.")
    ] = False,
) -> None:
    """Override the AI-call rate limit of an organization (and service).

    Example: voicewatch ratelimit set org_clg --service claims --per-minute 30
    """
    from voicewatch.guardrails import set_rate_limit

    if (per_minute is None) == (not default):
        if per_minute is None:
            raise typer.BadParameter("give --per-minute N or --default")
        raise typer.BadParameter("--per-minute and --default exclude each other")
    set_rate_limit(
        engine_of(ctx),
        organization,
        service,
        None if default else per_minute,
        actor=_actor(),
        now=now_ms(),
    )
    what = "the default" if default else f"{per_minute} a minute"
    typer.echo(f"{organization}/{service}: {what}")


@ratelimit_app.command("show")
@one_line_errors
def ratelimit_show(ctx: typer.Context) -> None:
    """The default, the overrides, and each window's current count.

    Example: voicewatch ratelimit show
    """
    from voicewatch.metrics.guards import rate_limits

    figures = rate_limits(engine_of(ctx), settings_of(ctx), now_ms())
    typer.echo(f"default: {figures['default_per_minute']} AI calls a minute per org and service")
    for o in figures["overrides"]:
        typer.echo(f"override {o['organization_id']}/{o['service']}: {o['max_per_minute']}/min")
    for w in figures["windows"]:
        typer.echo(
            f"{w['organization_id']}/{w['service']}: {w['count']} of {w['limit_per_minute']}"
            f" this minute ({w['refused']} refused)"
        )


@breaker_app.command("show")
@one_line_errors
def breaker_show(ctx: typer.Context) -> None:
    """Each AI service's circuit: state, recent failures, since when, next probe.

    Example: voicewatch breaker show
    """
    from voicewatch.metrics.guards import services

    for s in services(engine_of(ctx), settings_of(ctx)):
        since = to_iso(s["since"]) if s["since"] else "-"
        probe = f", next probe {to_iso(s['next_probe_at'])}" if s["next_probe_at"] else ""
        typer.echo(
            f"{s['service']}: {s['state']} ({s['status']}), {s['recent_failure_count']}"
            f" recent failure(s), since {since}{probe}"
        )


@breaker_app.command("reset")
@one_line_errors
def breaker_reset(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="transcription or claims")],
) -> None:
    """Force a circuit closed (audited; emits circuit_breaker_closed naming who).

    Example: voicewatch breaker reset claims
    """
    from voicewatch.guardrails import reset_breaker

    row = reset_breaker(engine_of(ctx), settings_of(ctx), service, actor=_actor(), now=now_ms())
    typer.echo(f"{service}: {'closed' if row['reset'] else 'was not open'}")
