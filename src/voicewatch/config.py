"""Settings, read in one place from environment variables (and CLI flags).

Every setting is documented in the README; ``tests/test_docs.py`` fails when
one is not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///voicewatch.db"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def default_queue_url(database_url: str) -> str:
    """The embedded queue: a SQLite file beside the SQLite database."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        db_path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqlite:///{db_path.with_name(db_path.stem + '-queue.db')}"
    return "sqlite:///voicewatch-queue.db"


@dataclass
class Settings:
    """All runtime settings. ``Settings.from_env()`` reads the environment."""

    database_url: str = DEFAULT_DATABASE_URL
    queue_url: str = ""
    secret_key: str = ""
    max_body_bytes: int = 4 * 1024 * 1024
    sqlite_busy_timeout_ms: int = 5000
    event_retention_days: int = 30
    hourly_retention_days: int = 7
    daily_retention_days: int = 90
    openai_api_key: str = ""
    openai_base_url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.queue_url:
            self.queue_url = default_queue_url(self.database_url)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from ``VOICEWATCH_*`` variables; keyword overrides win."""
        values: dict[str, object] = {
            "database_url": os.environ.get("VOICEWATCH_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "queue_url": os.environ.get("VOICEWATCH_QUEUE_URL", ""),
            "secret_key": os.environ.get("VOICEWATCH_SECRET_KEY", ""),
            "max_body_bytes": _env_int("VOICEWATCH_MAX_BODY_BYTES", 4 * 1024 * 1024),
            "sqlite_busy_timeout_ms": _env_int("VOICEWATCH_SQLITE_BUSY_TIMEOUT_MS", 5000),
            "event_retention_days": _env_int("VOICEWATCH_EVENT_RETENTION_DAYS", 30),
            "hourly_retention_days": _env_int("VOICEWATCH_HOURLY_RETENTION_DAYS", 7),
            "daily_retention_days": _env_int("VOICEWATCH_DAILY_RETENTION_DAYS", 90),
            "openai_api_key": os.environ.get("VOICEWATCH_OPENAI_API_KEY", ""),
            "openai_base_url": os.environ.get("VOICEWATCH_OPENAI_BASE_URL", ""),
        }
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        return cls(**values)  # type: ignore[arg-type]


#: Settings read by name from the environment; the README must list each.
ENV_VARS: tuple[str, ...] = (
    "VOICEWATCH_DATABASE_URL",
    "VOICEWATCH_QUEUE_URL",
    "VOICEWATCH_SECRET_KEY",
    "VOICEWATCH_MAX_BODY_BYTES",
    "VOICEWATCH_SQLITE_BUSY_TIMEOUT_MS",
    "VOICEWATCH_EVENT_RETENTION_DAYS",
    "VOICEWATCH_HOURLY_RETENTION_DAYS",
    "VOICEWATCH_DAILY_RETENTION_DAYS",
    "VOICEWATCH_OPENAI_API_KEY",
    "VOICEWATCH_OPENAI_BASE_URL",
)
