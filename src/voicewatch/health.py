"""Reachability checks of the database and the task queue, each a one-word answer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, text


def check_database(engine: Engine) -> str:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def check_queue(queue_url: str) -> str:
    """``ok`` when the queue's store answers: Redis PING, or the SQLite queue file opens."""
    try:
        if queue_url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            client = redis.Redis.from_url(queue_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            try:
                client.ping()
            finally:
                client.close()
            return "ok"
        path = Path(queue_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=0.5)
        try:
            conn.execute("SELECT 1")
        finally:
            conn.close()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
