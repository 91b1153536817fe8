"""The ``voicewatch`` command, run as a real subprocess: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from voicewatch.auth import principal_for_token
from voicewatch.store import make_engine
from voicewatch.store.tables import voice_pipeline_events

CLI = [sys.executable, "-m", "voicewatch.cli"]


def run(*args: str, db: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--db", db, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_create_token_prints_it_alone_on_the_last_line(db_url: str) -> None:
    result = run("create-token", "--scope", "ingest", "--name", "pipeline", db=db_url)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    engine = make_engine(db_url)
    principal = principal_for_token(engine, token)
    engine.dispose()
    assert principal.name == "pipeline" and not principal.is_staff


def test_bad_usage_exits_2_and_failure_exits_1(sqlite_url: str, tmp_path: Path) -> None:
    assert run("create-token", "--scope", "root", db=sqlite_url).returncode == 2
    assert run("no-such-command", db=sqlite_url).returncode == 2
    missing = run("ingest", str(tmp_path / "missing.jsonl"), db=sqlite_url)
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("error: ")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_ingest_reports_bad_lines_and_lands_the_good(db_url: str, tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {"event_id": f"e{i}", "event_type": "artifact_received", "timestamp": 1795462980000 + i}
        )
        for i in range(2500)
    ]
    lines[10] = "{broken"
    lines[2000] = json.dumps({"event_id": "x", "event_type": "nope", "timestamp": 1795462980000})
    lines.append(lines[0])  # a duplicate
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    result = run("ingest", str(path), db=db_url)
    assert result.returncode == 0, result.stderr
    assert "accepted 2498, duplicates 1, rejected 2" in result.stdout
    assert "line 11: not valid JSON" in result.stderr
    assert "line 2001: unknown event_type: nope" in result.stderr
    engine = make_engine(db_url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(voice_pipeline_events)).scalar_one()
    engine.dispose()
    assert count == 2498


def test_ingest_of_only_garbage_fails(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"\x00\xff garbage\n[[[[\n")
    result = run("ingest", str(path), db=sqlite_url)
    assert result.returncode == 1
    assert "rejected 2" in result.stdout


def test_get_calls_the_api_in_process(sqlite_url: str) -> None:
    result = run("get", "/api/v1/metrics/realtime", db=sqlite_url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["artifacts_received"] == 0


def test_create_staff_rejects_a_short_password(sqlite_url: str) -> None:
    result = run("create-staff", "ops@club.example", "--password", "short", db=sqlite_url)
    assert result.returncode == 1
    assert "at least 8" in result.stderr
    ok = run("create-staff", "ops@club.example", "--password", "a long passphrase", db=sqlite_url)
    assert ok.returncode == 0, ok.stderr


def test_aggregate_backfills_a_range_and_cleanup_reports(sqlite_url: str, tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "event_id": f"h{i}",
                "event_type": "artifact_received",
                "timestamp": 1795420800000 + i * 3_600_000,
            }
        )
        for i in range(3)
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert run("ingest", str(path), db=sqlite_url).returncode == 0
    result = run(
        "aggregate",
        "hourly",
        "--from",
        "2026-11-23T00:00:00Z",
        "--to",
        "2026-11-23T03:00:00Z",
        db=sqlite_url,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 3 hourly snapshot rows" in result.stdout  # 3 hours, platform-wide only
    bad = run("aggregate", "hourly", "--from", "yesterday", "--to", "today", db=sqlite_url)
    assert bad.returncode == 2
    cleaned = run("cleanup", db=sqlite_url)
    assert cleaned.returncode == 0 and cleaned.stdout.startswith("deleted ")


def test_org_roster_and_submit(db_url: str, tmp_path: Path) -> None:
    assert run("org", "create", "org_clg", "--name", "Clonmore GAA", db=db_url).stdout.startswith(
        "created"
    )
    assert run(
        "org", "create", "org_clg", "--name", "Clonmore GAA Club", db=db_url
    ).stdout.startswith("renamed")
    roster = tmp_path / "roster.csv"
    roster.write_text("name,team,aliases\nSean Murphy,U14,Murph|Seanie\n,U14,\nAoife Kelly,U14,\n")
    first = run("roster", "import", "org_clg", str(roster), db=db_url)
    assert first.returncode == 0, first.stderr
    assert "added 2, updated 0, aliases 2, bad rows 1" in first.stdout
    assert "line 3: name is empty" in first.stderr
    again = run("roster", "import", "org_clg", str(roster), db=db_url)
    assert "added 0, updated 2" in again.stdout  # re-import updates, never duplicates
    missing_org = run("roster", "import", "org_nope", str(roster), db=db_url)
    assert missing_org.returncode == 1 and "unknown organization" in missing_org.stderr
    queue = f"sqlite:///{tmp_path / 'queue.db'}"
    submitted = subprocess.run(
        [
            *CLI,
            "--db",
            db_url,
            "--queue",
            queue,
            "submit",
            "--org",
            "org_clg",
            "--coach",
            "c1",
            "--text",
            "Sean Murphy hurt his ankle",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stderr
    artifact_id = submitted.stdout.strip().splitlines()[-1]
    assert artifact_id.startswith("art_")
    both = run("submit", "--org", "org_clg", "--coach", "c1", db=db_url)
    assert both.returncode == 2  # neither --text nor --audio
