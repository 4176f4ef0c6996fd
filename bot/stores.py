"""Opening the journal: SQLite embedded by default, PostgreSQL when replicas share it.

Apart from both stores, so that each imports only the store interface (bot/store.py) and
neither imports the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.store import SqliteStore, Store


def is_postgres_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


@asynccontextmanager
async def open_store(
    location: str,
    *,
    lease_seconds: float = 30.0,
    pool_size: int = 8,
    sqlite_busy_timeout_ms: float = 250,
) -> AsyncIterator[Store]:
    """The journal at `location`: a `postgresql://` URL (shared by replicas) or a SQLite
    file path (one process). Closed when the block ends."""
    store: Store
    if is_postgres_url(location):
        # Imported here: a user of the embedded default never loads the driver.
        from bot.store_postgres import PostgresStore

        store = await PostgresStore.open(location, lease_seconds=lease_seconds, pool_size=pool_size)
    else:
        store = SqliteStore(location, busy_timeout_ms=sqlite_busy_timeout_ms)
    try:
        yield store
    finally:
        await store.close()
