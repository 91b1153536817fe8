"""Loading events from a JSON-lines file in batches, reporting bad lines by number."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from voicewatch.events import log_events


@dataclass
class IngestReport:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def ingest_jsonl(
    engine: Engine, path: Path, *, batch_size: int = 1000, progress: bool = False
) -> IngestReport:
    """Read ``path`` line by line and store its events through ``log_events``."""
    report = IngestReport()
    batch: list[Any] = []
    batch_lines: list[int] = []

    def flush() -> None:
        if not batch:
            return
        result = log_events(engine, batch)
        report.accepted += result.accepted
        report.duplicates += result.duplicates
        report.errors.extend((batch_lines[r.index], r.error) for r in result.rejected)
        batch.clear()
        batch_lines.clear()

    total = path.stat().st_size
    bar = _progress(total) if progress else None
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if bar:
                bar[0].advance(bar[1], len(raw))
            if not raw.strip():
                continue
            report.lines += 1
            try:
                batch.append(json.loads(raw))
                batch_lines.append(line_no)
            except (ValueError, RecursionError) as exc:
                report.errors.append((line_no, f"not valid JSON: {str(exc)[:100]}"))
                continue
            if len(batch) >= batch_size:
                flush()
    flush()
    if bar:
        bar[0].stop()
    report.errors.sort()
    return report


def _progress(total: int) -> tuple[Any, Any]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    task = bar.add_task("ingesting", total=total)
    bar.start()
    return bar, task
