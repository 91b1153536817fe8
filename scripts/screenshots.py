"""Screenshots of every dashboard page at 1440x900, from a seeded demo database.

Usage: .venv/bin/python scripts/screenshots.py docs/screenshots
"""

from __future__ import annotations

import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from voicewatch import alerts, worker
from voicewatch.auth import create_staff
from voicewatch.clock import HOUR_MS, now_ms
from voicewatch.config import Settings
from voicewatch.demo import seed
from voicewatch.metrics import aggregate_range
from voicewatch.simulate import simulate_notes
from voicewatch.web.app import create_app

PAGES = (
    ("overview", "/"),
    ("pipeline", "/pipeline"),
    ("artifacts", "/artifacts"),
    ("metrics", "/metrics?range=24h"),
    ("alerts", "/alerts"),
    ("events", "/events"),
    ("guards", "/guards"),
)
EMAIL, PASSWORD = "staff@voicewatch.local", "screenshots only"


def _budgets(engine: object) -> None:
    """Budgets for the guard-rails page: one that fills, one past its warning, one with room."""
    from voicewatch.guardrails import set_budget
    from voicewatch.simulate import seed_demo_clubs

    seed_demo_clubs(engine)
    now = now_ms()
    for org, usd, warn in (("org_clg", 0.06, 0.8), ("org_rvfc", 0.1, 0.5),
                           ("org_hrc", 0.5, 0.8), ("platform", 1.0, 0.8)):  # fmt: skip
        set_budget(engine, org, usd, warn, actor="screenshots", now=now)  # type: ignore[arg-type]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="vw-shots-"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'demo.db'}")
    app = create_app(settings)
    engine = app.state.engine
    seed(engine, artifacts=600)
    queued: list[tuple[str, str, int]] = []
    ctx = worker.install(
        settings, worker.build_context(settings, enqueue=lambda *job: queued.append(job))
    )
    _budgets(engine)
    ids = simulate_notes(ctx, settings, artifacts=40, failure_rate=0.2, rng=random.Random(3))
    from voicewatch.pipeline.stages import run_stage

    while queued:
        run_stage(ctx, *queued.pop(0))
    ctx.monitor.flush(timeout=10)
    now = now_ms()
    aggregate_range(engine, now - 26 * HOUR_MS, now, "hourly")
    alerts.check_health(engine)
    create_staff(engine, EMAIL, PASSWORD)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{base}/login")
        page.fill("input[name=email]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        for name, path in PAGES:
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(600)
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"wrote {out / (name + '.png')}")
        page.goto(f"{base}/artifacts/{ids[0]}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "artifact_detail.png"))
        print(f"wrote {out / 'artifact_detail.png'}")
        browser.close()
    server.should_exit = True
    ctx.monitor.close()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
