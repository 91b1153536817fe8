"""``migrate``, ``create-token``, ``create-staff``: the schema and who may come in."""

from __future__ import annotations

from typing import Annotated

import typer

from voicewatch.cli.base import app, engine_of, one_line_errors
from voicewatch.model import TokenScope


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
    scope: Annotated[TokenScope, typer.Option(help="ingest (send only) or staff (read too).")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
) -> None:
    """Print a new API token once, alone on the last line.

    Example: voicewatch create-token --scope ingest --name pipeline
    """
    from voicewatch.auth import create_token as make_token

    token = make_token(engine_of(ctx), scope=scope.value, name=name)
    typer.echo(f"created a {scope.value} token; it is shown only once:")
    typer.echo(token)


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
