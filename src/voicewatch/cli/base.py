"""The root ``voicewatch`` command and what every command group shares.

The global options (``--db``, ``--queue``), the one-line error wrapper and the
settings/engine helpers. The settings go from here to each command as
arguments: no module reads the process's environment to learn them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import click
import typer
from sqlalchemy import Engine
from typer.exceptions import TyperException

from voicewatch.config import Settings

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
    from voicewatch.store import write_stats

    write_stats.name_process(ctx.invoked_subcommand or "voicewatch")
    ctx.obj = Settings.from_env(database_url=db, queue_url=queue)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the global options made (``--db``/``--queue`` over the environment)."""
    return ctx.obj  # type: ignore[no-any-return]


def engine_of(ctx: typer.Context) -> Engine:
    """The store of the settings, opened (and migrated) once per command."""
    from voicewatch.store import open_store

    settings = settings_of(ctx)
    return open_store(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
