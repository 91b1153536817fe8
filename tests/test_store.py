"""The schema: migrations create every table of DESIGN.md, on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect

from voicewatch.store import migrate
from voicewatch.store.tables import metadata

DESIGN_TABLES = {
    "organizations",
    "users",
    "players",
    "coach_player_aliases",
    "voice_note_artifacts",
    "voice_note_transcripts",
    "voice_note_claims",
    "voice_note_entity_resolutions",
    "insight_drafts",
    "ai_service_health",
    "ai_usage_log",
    "org_cost_budgets",
    "rate_limits",
    "voice_pipeline_events",
    "voice_pipeline_counters",
    "voice_pipeline_metrics_snapshots",
    "voice_pipeline_alerts",
    "retry_attempts",
    "api_tokens",
}


def test_migrations_create_every_design_table(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert names >= DESIGN_TABLES


def test_migrated_columns_match_the_metadata(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        migrated = {c["name"] for c in inspector.get_columns(table.name)}
        assert migrated == {c.name for c in table.columns}, table.name


def test_migrate_twice_is_harmless(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    assert "voice_pipeline_events" in inspect(engine).get_table_names()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    from voicewatch.store import make_engine

    eng = make_engine(sqlite_url)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    eng.dispose()


def test_sqlite_page_size_is_set_and_checkpoints_are_made_off_the_write_path(
    tmp_path: Path,
) -> None:
    """New stores get 4 KB pages; no COMMIT checkpoints the WAL (``wal_autocheckpoint=0``):
    the process's checkpointer thread does, once the WAL has grown past its size in bytes."""
    import sqlite3
    import time

    from sqlalchemy import text

    from voicewatch.store import make_engine, write_transaction
    from voicewatch.store.checkpoint import ensure_checkpointer
    from voicewatch.store.engine import SQLITE_PAGE_SIZE

    path = tmp_path / "new.db"
    # This process's checkpointer for the file, with a small threshold (before any
    # write, which would start it with the default 40 MB).
    ensure_checkpointer(str(path), threshold=256 * 1024, poll_s=0.02)
    eng = make_engine(f"sqlite:///{path}")
    migrate(eng)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == SQLITE_PAGE_SIZE
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    with write_transaction(eng) as conn:
        conn.execute(text("CREATE TABLE filler (b BLOB)"))
    before = path.stat().st_size
    for _ in range(16):  # 16 x 64 KB = 1 MB into the WAL, four times the threshold
        with write_transaction(eng) as conn:
            conn.execute(text("INSERT INTO filler VALUES (randomblob(65536))"))
    with eng.connect():  # keep a connection open: closing the last one checkpoints too
        deadline = time.monotonic() + 20
        while path.stat().st_size < before + 1024 * 1024 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size >= before + 1024 * 1024  # copied into the database file
    eng.dispose()
    # A store made with other pages keeps them.
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as raw:
        raw.execute("PRAGMA page_size=16384")
        raw.execute("CREATE TABLE t (x)")
    eng = make_engine(f"sqlite:///{old}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 16384
    eng.dispose()


def test_the_wal_starts_over_while_a_writer_keeps_writing(tmp_path: Path) -> None:
    """A ``PASSIVE`` checkpoint alone never let the WAL start over while a writer kept
    appending (``bench_pages`` grew a 591 MB store's WAL to 18 GB): SQLite starts it over
    only when a writer begins after every frame was copied. The checkpointer's
    ``RESTART`` after the passive copy does, and ``journal_size_limit`` cuts the file back.
    """
    from sqlalchemy import text

    from voicewatch.store import make_engine, write_transaction
    from voicewatch.store.checkpoint import ensure_checkpointer, wal_bytes

    path = tmp_path / "steady.db"
    threshold = 256 * 1024
    ensure_checkpointer(str(path), threshold=threshold, poll_s=0.01)
    eng = make_engine(f"sqlite:///{path}")
    migrate(eng)
    with write_transaction(eng) as conn:
        conn.execute(text("CREATE TABLE filler (b BLOB)"))
    largest = 0
    with eng.connect():  # a connection stays open: closing the last one would checkpoint
        for _ in range(800):  # 800 x 64 KB = 50 MB through the WAL, 200 thresholds
            with write_transaction(eng) as conn:
                conn.execute(text("INSERT INTO filler VALUES (randomblob(65536))"))
            largest = max(largest, wal_bytes(path))
    eng.dispose()
    # before: the WAL held all 50 MB; now it starts over (about 7 MB at most, measured)
    assert largest < 16 * 1024 * 1024, f"the WAL grew to {largest:,} bytes"
