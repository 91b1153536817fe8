"""``org`` and ``roster``: the clubs and their players."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voicewatch.cli.base import app, engine_of, fail, one_line_errors

org_app = typer.Typer(help="Organizations (clubs).", no_args_is_help=True)
roster_app = typer.Typer(help="Club rosters.", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(roster_app, name="roster")


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
    from voicewatch.pipeline.clubs import upsert_organization

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
    from voicewatch.pipeline.clubs import import_roster

    if not file.is_file():
        fail(f"no such file: {file}")
    report = import_roster(engine_of(ctx), organization_id, file)
    for line_no, error in report.errors:
        typer.echo(f"line {line_no}: {error}", err=True)
    typer.echo(
        f"added {report.added}, updated {report.updated}, aliases {report.aliases}, "
        f"bad rows {len(report.errors)}"
    )
