"""``voicewatch coach add`` / ``coach import``: coaches are people (the coach loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voicewatch.cli.base import app, engine_of, fail, one_line_errors

coach_app = typer.Typer(help="Coaches (people with a name and a club).", no_args_is_help=True)
app.add_typer(coach_app, name="coach")


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
