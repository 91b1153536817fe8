"""``voicewatch demo``: a seeded database, a staff login and live traffic, in one command."""

from __future__ import annotations

import random
import secrets
import threading
import time

from sqlalchemy import Engine, func, select

from voicewatch.auth import create_staff, create_token
from voicewatch.clock import HOUR_MS, now_ms
from voicewatch.config import Settings
from voicewatch.events import log_events
from voicewatch.simulate import DEMO_ORGANIZATIONS, artifact_events, traffic
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


def _live_traffic(engine: Engine, rate: float, stop: threading.Event) -> None:
    rng = random.Random()
    while not stop.wait(1.0 / max(rate, 0.01)):
        org_id = rng.choice(DEMO_ORGANIZATIONS)[0]
        fail_at = (
            rng.choice(("transcription", "claims_extraction")) if rng.random() < 0.05 else None
        )
        story = artifact_events(
            rng,
            start_ms=now_ms() - 15_000,
            organization_id=org_id,
            coach_user_id=f"coach_{org_id[4:]}_{rng.randint(1, 4)}",
            fail_at=fail_at,
        )
        try:
            log_events(engine, story)
        except Exception:  # the demo keeps going through a busy database
            time.sleep(1)


def run_demo(settings: Settings, *, port: int, rate: float) -> None:
    import uvicorn

    from voicewatch.web.app import create_app

    engine = open_store(settings.database_url)
    written = seed(engine)
    password = secrets.token_urlsafe(9)
    create_staff(engine, DEMO_EMAIL, password)
    token = create_token(engine, scope="staff", name="demo")
    stop = threading.Event()
    threading.Thread(target=_live_traffic, args=(engine, rate, stop), daemon=True).start()
    print(f"voicewatch demo: seeded {written} events into {settings.database_url}")
    print(f"  dashboard  http://127.0.0.1:{port}/")
    print(f"  login      {DEMO_EMAIL} / {password}")
    print(f"  API token  {token}")
    print(
        f"  try        curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/v1/metrics/realtime"
    )
    try:
        uvicorn.run(
            create_app(settings, engine=engine), host="127.0.0.1", port=port, log_level="warning"
        )
    finally:
        stop.set()
