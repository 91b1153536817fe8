"""``voicewatch demo``: a seeded database, a staff login and live traffic, in one command."""

from __future__ import annotations

import random
import secrets
import threading
import time
from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch.auth import create_staff, create_token
from voicewatch.clock import HOUR_MS, now_ms
from voicewatch.config import Settings
from voicewatch.events import log_events
from voicewatch.simulate import DEMO_ORGANIZATIONS, traffic
from voicewatch.simulate_guards import GuardScript
from voicewatch.store import open_store, read_connection, write_transaction
from voicewatch.store.tables import organizations, voice_pipeline_events

DEMO_EMAIL = "staff@voicewatch.local"


def seed(engine: Engine, *, artifacts: int = 400, seed_value: int = 7) -> int:
    """Fill an empty database with a day of traffic; returns events written (0 if not empty)."""
    with read_connection(engine) as conn:
        if conn.execute(select(func.count()).select_from(voice_pipeline_events)).scalar_one():
            return 0
    with write_transaction(engine) as conn:
        for org_id, name in DEMO_ORGANIZATIONS:
            exists = conn.execute(
                select(organizations.c.organization_id).where(
                    organizations.c.organization_id == org_id
                )
            ).first()
            if not exists:
                conn.execute(
                    organizations.insert().values(
                        organization_id=org_id, name=name, created_at=now_ms()
                    )
                )
    now = now_ms()
    batch = traffic(
        random.Random(seed_value),
        artifacts=artifacts,
        start_ms=now - 24 * HOUR_MS,
        end_ms=now - 60_000,
    )
    written = 0
    for start in range(0, len(batch), 1000):
        written += log_events(engine, batch[start : start + 1000]).accepted
    return written


def _live_traffic(ctx: object, settings: Settings, rate: float, stop: threading.Event) -> None:
    """Real notes through the real pipeline, ``rate`` per second, 5% failing once,
    and the guard-rail script (``simulate_guards.GuardScript``) in the first minutes.
    The demo coaches answer their inbox through the worker's minute job, as after
    ``voicewatch simulate`` (``simulate_coaches``; the demo's worker runs the periodic jobs)."""
    rng = random.Random()
    script = GuardScript()
    started = now_ms()
    while not stop.wait(1.0 / max(rate, 0.01)):
        try:
            traffic_step(ctx, settings, script, now_ms() - started, now_ms(), rng)
        except Exception:  # the demo keeps going through a busy database
            time.sleep(1)


def traffic_step(
    ctx: Any, settings: Settings, script: GuardScript, elapsed_ms: int, now: int, rng: Any
) -> None:
    """One tick of the demo's traffic: the guard-rail script's due actions, then one note.

    Time is a parameter, so a test runs the demo's first minutes compressed.
    """
    from voicewatch.simulate import simulate_notes

    script.step(ctx, settings, elapsed_ms, now, rng)
    simulate_notes(ctx, settings, artifacts=1, failure_rate=0.05, rng=rng)


def run_demo(settings: Settings, *, port: int, rate: float) -> None:
    """Seed a day of history, start a worker and live traffic, and serve the dashboard."""
    import uvicorn
    from huey.consumer import Consumer

    from voicewatch import metrics, tasks, worker
    from voicewatch.web.app import create_app
    from voicewatch.web.serving import server_options

    engine = open_store(settings.database_url)
    written = seed(engine)
    now = now_ms()
    metrics.aggregate_range(engine, now - 25 * HOUR_MS, now, "hourly")
    password = secrets.token_urlsafe(9)
    create_staff(engine, DEMO_EMAIL, password)
    token = create_token(engine, scope="staff", name="demo")
    ctx = worker.start(settings)
    consumer = Consumer(tasks.huey, workers=2, worker_type="thread", periodic=True)
    consumer.start()
    stop = threading.Event()
    threading.Thread(target=_live_traffic, args=(ctx, settings, rate, stop), daemon=True).start()
    print(f"voicewatch demo: seeded {written} events into {settings.database_url}")
    print(f"  dashboard  http://127.0.0.1:{port}/")
    print(f"  login      {DEMO_EMAIL} / {password}")
    print(f"  API token  {token}")
    print(f"  traffic    {rate:g} note(s)/s through the pipeline, worker running in-process")
    try:
        uvicorn.run(
            create_app(settings, engine=engine),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            **server_options(settings),
        )
    finally:
        stop.set()
        consumer.stop(graceful=True)
        if ctx.monitor is not None:
            ctx.monitor.close()
