"""Open the store for a database URL: one per URL and process, shared by every tracker in it."""

from __future__ import annotations

import os
import threading

from ..config import DatabaseURL, resolve_db
from .base import ErrorRow, RunEnd, StepEnd, Store

__all__ = ["ErrorRow", "RunEnd", "StepEnd", "Store", "open_store", "forget_inherited_stores"]

_stores: dict[str, Store] = {}
_stores_pid = os.getpid()
_lock = threading.Lock()
# Stores inherited through fork. They are never used nor closed in the child: closing an inherited SQLite
# connection can checkpoint or unlink files the parent still relies on. Holding a reference keeps them alive.
_inherited: list[Store] = []


def _new_store(url: DatabaseURL) -> Store:
    if url.scheme == "postgresql":
        from .postgres import PostgresStore  # the driver is imported only when Postgres is used

        return PostgresStore(url.target)
    from .sqlite import SQLiteStore

    return SQLiteStore(url.target)


def open_store(db: object = None) -> Store:
    """The process's store for `db` (argument, $RUNTRACKER_DB or the default), migrated on first use."""
    url = db if isinstance(db, DatabaseURL) else resolve_db(db)
    key = str(url)
    with _lock:
        if os.getpid() != _stores_pid:
            forget_inherited_stores()
        store = _stores.get(key)
        if store is None:
            store = _new_store(url)
            store.migrate()
            _stores[key] = store
        return store


def forget_inherited_stores() -> None:
    """After fork, in the child: set aside the parent's connections (see `_inherited`)."""
    global _stores_pid
    _inherited.extend(_stores.values())
    _stores.clear()
    _stores_pid = os.getpid()


def close_all() -> None:
    """Close every store of this process (tests and the CLI use this; pipelines need not)."""
    with _lock:
        for store in _stores.values():
            try:
                store.close()
            except Exception:
                pass
        _stores.clear()
