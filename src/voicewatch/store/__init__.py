"""Storage: tables, engines and migrations. Knows nothing of the web or the pipeline."""

from voicewatch.store.engine import (
    is_sqlite,
    make_engine,
    normalize_url,
    read_connection,
    write_transaction,
)
from voicewatch.store.migrate import migrate, open_store

__all__ = [
    "is_sqlite",
    "make_engine",
    "migrate",
    "normalize_url",
    "open_store",
    "read_connection",
    "write_transaction",
]
