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


def test_sqlite_page_size_is_set_and_checkpoints_are_by_bytes(tmp_path: Path) -> None:
    import sqlite3

    from voicewatch.store import make_engine
    from voicewatch.store.engine import SQLITE_PAGE_SIZE, WAL_CHECKPOINT_BYTES

    eng = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    migrate(eng)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == SQLITE_PAGE_SIZE
        checkpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert checkpoint == WAL_CHECKPOINT_BYTES // SQLITE_PAGE_SIZE
    eng.dispose()
    # A store made with other pages keeps them, and its checkpoint interval
    # still comes to the same number of bytes.
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as raw:
        raw.execute("PRAGMA page_size=16384")
        raw.execute("CREATE TABLE t (x)")
    eng = make_engine(f"sqlite:///{old}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 16384
        checkpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert checkpoint == WAL_CHECKPOINT_BYTES // 16384
    eng.dispose()
