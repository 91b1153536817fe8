"""``voicewatch budget|ratelimit|breaker``, ``simulate --outage``: run as subprocesses."""

from __future__ import annotations

from test_cli import run
from voicewatch import audit
from voicewatch.clock import now_ms
from voicewatch.pipeline import ratelimit
from voicewatch.pipeline.outages import in_outage
from voicewatch.store import make_engine


def test_budget_set_and_show_and_bad_input(db_url: str) -> None:
    assert run("org", "create", "org_clg", "--name", "Clonmore GAA", db=db_url).returncode == 0
    done = run("budget", "set", "org_clg", "--daily-usd", "5", "--warn-at", "0.6", db=db_url)
    assert done.returncode == 0, done.stderr
    assert "org_clg: $5.00 a day, warn at 60%" in done.stdout
    assert run("budget", "set", "platform", "--daily-usd", "20", db=db_url).returncode == 0
    shown = run("budget", "show", db=db_url)
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("platform") and "$20.00" in lines[0]  # the platform first
    assert lines[1].startswith("org_clg") and lines[1].endswith("ok")
    assert "estimated cost model" in shown.stdout
    unknown = run("budget", "set", "org_nope", "--daily-usd", "5", db=db_url)
    assert unknown.returncode == 1 and "unknown organization: org_nope" in unknown.stderr
    negative = run("budget", "set", "org_clg", "--daily-usd", "-1", db=db_url)
    assert negative.returncode == 1 and "daily_usd" in negative.stderr
    engine = make_engine(db_url)
    (entry, *_rest) = audit.entries(engine, target="org_clg")
    assert entry["actor"].startswith("cli") and entry["after"]["warn_at"] == 0.6
    engine.dispose()


def test_ratelimit_set_show_and_default(sqlite_url: str) -> None:
    assert run("org", "create", "org_clg", "--name", "Clonmore GAA", db=sqlite_url).returncode == 0
    done = run("ratelimit", "set", "org_clg", "--service", "claims", "--per-minute", "7",
               db=sqlite_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    engine = make_engine(sqlite_url)
    assert ratelimit.limit_for(engine, "org_clg", "claims", 600) == 7
    assert ratelimit.limit_for(engine, "org_clg", "transcription", 600) == 600
    shown = run("ratelimit", "show", db=sqlite_url).stdout
    assert "default: 600" in shown and "override org_clg/claims: 7/min" in shown
    assert run("ratelimit", "set", "org_clg", "--service", "claims", "--default",
               db=sqlite_url).returncode == 0  # fmt: skip
    assert ratelimit.limit_for(engine, "org_clg", "claims", 600) == 600
    assert run("ratelimit", "set", "org_clg", db=sqlite_url).returncode == 2
    bad = run("ratelimit", "set", "org_clg", "--service", "x", "--per-minute", "1", db=sqlite_url)
    assert bad.returncode == 1 and "service must be" in bad.stderr
    engine.dispose()


def test_breaker_show_reset_and_simulate_an_outage(sqlite_url: str) -> None:
    shown = run("breaker", "show", db=sqlite_url)
    assert shown.returncode == 0 and "claims: closed" in shown.stdout
    assert "was not open" in run("breaker", "reset", "claims", db=sqlite_url).stdout
    assert run("breaker", "reset", "nope", db=sqlite_url).returncode == 1
    out = run("simulate", "--artifacts", "3", "--outage", "claims", "--outage-seconds", "60",
              db=sqlite_url)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "claims provider down until" in out.stdout and "queued 3 notes" in out.stdout
    engine = make_engine(sqlite_url)
    assert in_outage(engine, "claims", now_ms())
    engine.dispose()
