"""How many OTLP spans mapped to nothing: a figure for ``/metrics`` and the health answer.

Kept as a counter row (``counter_type`` ``otlp_unmapped_spans``, platform
scope, minute buckets) in the same counters table as the live figures, so it
is shared by every server process and read without a scan. It counts spans
as received: an exporter's retry of the same request counts them again.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from voicewatch.clock import minute_start
from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import voice_pipeline_counters as counters_t

UNMAPPED = "otlp_unmapped_spans"
_UPSERT = {
    "sqlite": (
        f"INSERT INTO {counters_t.name} "
        "(scope, bucket_start, counter_type, pipeline_stage, count, total) "
        "VALUES (?, ?, ?, '', ?, 0) "
        "ON CONFLICT (scope, bucket_start, counter_type, pipeline_stage) DO UPDATE SET "
        f"count = {counters_t.name}.count + excluded.count"
    ),
}
_UPSERT["postgresql"] = _UPSERT["sqlite"].replace("?", "%s")


def add_unmapped(engine: Engine, count: int, now_ms: int) -> None:
    """Add ``count`` spans that mapped to nothing, in the minute of ``now_ms``."""
    if count <= 0:
        return
    with write_transaction(engine) as conn:
        conn.exec_driver_sql(
            _UPSERT[conn.dialect.name], (PLATFORM, minute_start(now_ms), UNMAPPED, count)
        )


def unmapped_since(engine: Engine, since_ms: int) -> int:
    """Spans that mapped to nothing since ``since_ms`` (epoch ms, UTC)."""
    query = select(func.coalesce(func.sum(counters_t.c.count), 0)).where(
        counters_t.c.scope == PLATFORM,
        counters_t.c.counter_type == UNMAPPED,
        counters_t.c.bucket_start >= minute_start(since_ms),
    )
    with read_connection(engine) as conn:
        return int(conn.execute(query).scalar_one())
