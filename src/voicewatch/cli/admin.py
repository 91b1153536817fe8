"""``migrate``, tokens and staff accounts: the schema and who may come in."""

from __future__ import annotations

from typing import Annotated, Any

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
