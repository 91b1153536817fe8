"""``ingest``: load harness events from a JSON-lines file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voicewatch.cli.base import app, engine_of, fail, one_line_errors


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
