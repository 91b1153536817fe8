"""Screenshots of every dashboard page at 1440x900, from a seeded demo database.

The coach loop is played out first (``_coach_loop``) so the staff's disambiguation
queue and a demo coach's inbox show every part of it: names waiting, drafts to
confirm, an insight applied without asking (with its Undo), thresholds and their
calibration history.

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
#: A demo coach with no simulated notes of his own, so his inbox holds just this story.
COACH, COACH_EMAIL = "coach_clg_3", "declan@clonmore.example"
#: His notes after the demo coaches have answered theirs: a name two players share (once
#: the roster gains a second Sean), a name on nobody, drafts to confirm, and one
#: confident enough to be applied without asking.
COACH_NOTES = (
    ("org_clg", COACH, "Sean was brilliant on the frees tonight."),
    ("org_clg", COACH, "Fiachra went over on his ankle at training, doubtful for Saturday."),
    ("org_clg", COACH, "Jack Walsh has a hamstring strain, physio says two weeks."),
    ("org_clg", COACH, "Darragh Kelly captained the team for the first time today and did great."),
    ("org_rvfc", "coach_rvfc_1", "Zara was superb in goal today."),
)
#: What Declan said about each player before (all confirmed: his calibration history).
HISTORY_TEMPLATES = (
    "{a} has a hamstring strain, physio says two weeks.",
    "{a} went over on his ankle at training tonight, doubtful for Saturday.",
)


def _budgets(engine: object) -> None:
    """Budgets for the guard-rails page: one that fills, one past its warning, one with room."""
    from voicewatch.guardrails import set_budget
    from voicewatch.simulate import seed_demo_clubs

    seed_demo_clubs(engine)
    now = now_ms()
    for org, usd, warn in (("org_clg", 0.06, 0.8), ("org_rvfc", 0.1, 0.5),
                           ("org_hrc", 0.5, 0.8), ("platform", 1.0, 0.8)):  # fmt: skip
        set_budget(engine, org, usd, warn, actor="screenshots", now=now)  # type: ignore[arg-type]


def _run_queue(ctx: object, queued: list[tuple[str, str, int]]) -> None:
    from voicewatch.pipeline.stages import run_stage

    while queued:
        run_stage(ctx, *queued.pop(0))  # type: ignore[arg-type]


def _declans_month(ctx: object, queued: list[tuple[str, str, int]]) -> None:
    """Declan sends notes about each of his players and confirms every draft: the
    history from which the calibration sets his threshold (and shows its figures)."""
    from voicewatch.coaching.inbox import pending_drafts
    from voicewatch.pipeline.decisions import Actor, confirm_draft
    from voicewatch.pipeline.intake import submit_note
    from voicewatch.simulate_notes import DEMO_CLUBS

    players = [name for name, _team, _aliases in DEMO_CLUBS[0].players]
    for template in HISTORY_TEMPLATES:
        for name in players:
            text = template.format(a=name)
            submit_note(ctx, organization_id="org_clg", coach_user_id=COACH, text=text)  # type: ignore[arg-type]
    _run_queue(ctx, queued)
    for draft in pending_drafts(ctx.engine, COACH, limit=500):  # type: ignore[attr-defined]
        confirm_draft(ctx, draft["draft_id"], Actor.coach(COACH))  # type: ignore[arg-type]


def _coach_loop(ctx: object, settings: Settings, queued: list[tuple[str, str, int]]) -> None:
    """The demo coaches answer notes made 5 hours ago, Declan confirms a month's worth,
    the daily calibration runs on those answers, then Declan gets fresh items: waiting
    names, drafts to confirm, and a confident one applied without asking."""
    from sqlalchemy import update

    from voicewatch.coaching.jobs import calibration_job
    from voicewatch.coaching.people import set_coach_login
    from voicewatch.pipeline import clubs
    from voicewatch.pipeline.intake import submit_note
    from voicewatch.simulate_coaches import decide_as_demo_coaches
    from voicewatch.store import write_transaction
    from voicewatch.store.tables import insight_drafts, voice_note_entity_resolutions

    engine = ctx.engine  # type: ignore[attr-defined]
    with write_transaction(engine) as conn:
        for table in (insight_drafts, voice_note_entity_resolutions):
            conn.execute(update(table).values(created_at=table.c.created_at - 5 * HOUR_MS))
    decide_as_demo_coaches(ctx)
    _declans_month(ctx, queued)
    calibration_job(engine, settings)
    clubs.import_roster(engine, "org_clg", "name,team,aliases\nSean Kelly,U14 Hurling,\n")
    for org, coach, text in COACH_NOTES:
        submit_note(ctx, organization_id=org, coach_user_id=coach, text=text)  # type: ignore[arg-type]
        _run_queue(ctx, queued)
    set_coach_login(engine, COACH, COACH_EMAIL, PASSWORD)


def _shoot(page: object, url: str, path: Path, *, full_page: bool = False) -> None:
    page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    page.wait_for_timeout(600)  # type: ignore[attr-defined]
    page.screenshot(path=str(path), full_page=full_page)  # type: ignore[attr-defined]
    print(f"wrote {path}")


def _sign_in(page: object, base: str, email: str) -> None:
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.fill("input[name=email]", email)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]


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
    ids = simulate_notes(ctx, settings, artifacts=80, failure_rate=0.2, rng=random.Random(3))
    _run_queue(ctx, queued)
    _coach_loop(ctx, settings, queued)
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
        _sign_in(page, base, EMAIL)
        for name, path in (*PAGES, ("disambiguation", "/disambiguation")):
            _shoot(page, base + path, out / f"{name}.png")
        _shoot(page, f"{base}/artifacts/{ids[0]}", out / "artifact_detail.png")
        coach = browser.new_page(viewport={"width": 1440, "height": 900})  # its own cookies
        _sign_in(coach, base, COACH_EMAIL)
        _shoot(coach, f"{base}/inbox", out / "inbox.png", full_page=True)  # down to Undo
        browser.close()
    server.should_exit = True
    ctx.monitor.close()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
