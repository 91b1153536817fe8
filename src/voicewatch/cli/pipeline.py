"""``submit``, ``simulate``, ``worker``: notes through the pipeline, and the worker that runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voicewatch.cli.base import app, engine_of, fail, one_line_errors, settings_of


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
    from voicewatch import worker as composition
    from voicewatch.pipeline.facade import store_upload, submit_note

    if (text is None) == (audio is None):
        raise typer.BadParameter("give exactly one of --text and --audio")
    if channel not in ("whatsapp", "app"):
        raise typer.BadParameter("must be whatsapp or app", param_hint="--channel")
    pipeline = composition.start(settings_of(ctx), engine_of(ctx))
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


@app.command()
@one_line_errors
def simulate(
    ctx: typer.Context,
    artifacts: Annotated[int, typer.Option("--artifacts", min=1, max=1_000_000)] = 20,
    failure_rate: Annotated[float, typer.Option("--failure-rate", min=0.0, max=1.0)] = 0.0,
    audio_share: Annotated[float, typer.Option("--audio-share", min=0.0, max=1.0)] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Random seed, for repeatable runs.")] = None,
    outage: Annotated[
        str | None,
        typer.Option(help="Guard rails: make this AI service (claims) fail for a while first."),
    ] = None,
    outage_seconds: Annotated[int, typer.Option("--outage-seconds", min=1, max=3600)] = 20,
    burst_org: Annotated[
        str | None,
        typer.Option("--burst-org", help="Guard rails: send every note to this org at once."),
    ] = None,
) -> None:
    """Seed demo clubs if absent and queue N realistic notes through the pipeline.

    The worker processes them; its minute job then has the demo clubs' coaches
    decide their drafts and names after realistic delays (most confirm, some
    reject, a few never answer and expire).

    --outage makes every call to that AI service fail for --outage-seconds (through
    its circuit breaker, which opens); --burst-org sends all N notes to one
    organization at once (its rate limit defers what is over it).

    Example: voicewatch simulate --artifacts 200 --failure-rate 0.1 --audio-share 0.2
    Example: voicewatch simulate --artifacts 30 --outage claims --outage-seconds 20
    Example: voicewatch simulate --artifacts 40 --burst-org org_hrc
    """
    import random

    from rich.progress import Progress

    from voicewatch import worker as composition
    from voicewatch.simulate import simulate_notes

    pipeline = composition.start(settings_of(ctx), engine_of(ctx))
    if outage or burst_org:
        from voicewatch.simulate_guards import simulate_guard_traffic

        line = simulate_guard_traffic(
            pipeline, artifacts, outage, outage_seconds * 1000, burst_org, random.Random(seed)
        )
        if pipeline.monitor is not None:
            pipeline.monitor.flush(timeout=30)
        typer.echo(line)
        return
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
    typer.echo(
        f"queued {len(ids)} notes; run 'voicewatch worker' to process them "
        "(its minute job then has the demo coaches answer their inbox)"
    )


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
    from voicewatch.worker import run_worker

    settings = settings_of(ctx)
    run_worker(
        settings,
        engine_of(ctx),
        workers=workers,
        periodic=not no_periodic,
        on_ready=lambda: typer.echo(f"worker: {workers} threads on {settings.queue_url}"),
    )
