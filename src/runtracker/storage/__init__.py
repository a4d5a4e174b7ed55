"""The storage seam: `open_store(db)` gives a Store (SQLite or PostgreSQL) with its schema brought up to date.

The queries are classes by resource over a store (`Runs(store)`, and in their modules `Auth`, `Dashboard`,
`ErrorSearch`, `AlertStore`, `Ingest`): see `base`.

A process keeps one store per database, shared by every tracker in it: that cache is a `StoreCache`, owned by
the process state (`runtracker.core.state`). The CLI and tests open stores of their own with `open_store`.
"""

from __future__ import annotations

import threading

from ..settings.values import DatabaseURL, resolve_db
from .base import ForeignDatabase, NoDatabase, Store
from .runs import ALREADY_ENDED, ENDED, OVERRODE_REAPER, OWNER, REAPER, ErrorRow, RunEnd, RunFacts, Runs, StepEnd

__all__ = [
    "ALREADY_ENDED",
    "ENDED",
    "OVERRODE_REAPER",
    "OWNER",
    "REAPER",
    "ErrorRow",
    "ForeignDatabase",
    "NoDatabase",
    "RunEnd",
    "RunFacts",
    "Runs",
    "StepEnd",
    "Store",
    "StoreCache",
    "open_store",
]


def open_store(db: object = None, *, create: bool = True) -> Store:
    """A new store for `db` (argument, $RUNTRACKER_DB or the default), its schema upgraded to the latest.

    `create=False` (read-only commands): NoDatabase instead of creating a database file, its directory, or
    runtracker's tables in an empty PostgreSQL database. ForeignDatabase for a database whose tables of these
    names another tool made: it is left exactly as found."""
    url = db if isinstance(db, DatabaseURL) else resolve_db(db)
    if url.scheme == "postgresql":
        from .postgres import PostgresStore

        store: Store = PostgresStore(url.target)
    else:
        from .sqlite import SQLiteStore

        store = SQLiteStore(url.target, create=create)
    try:
        if not create and not store.has_tables():
            raise NoDatabase(f"there are no runtracker tables in {store.url}")
        return store.open()
    except BaseException:
        store.close()
        raise


class StoreCache:
    """One store per database for a process, opened on first use."""

    def __init__(self) -> None:
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()
        # Stores inherited through fork. They are never used nor closed in the child: closing an inherited
        # SQLite connection can checkpoint or unlink files the parent still relies on. Holding a reference
        # keeps them from being garbage-collected (and so closed).
        self._inherited: list[Store] = []

    def get(self, db: object = None) -> Store:
        url = db if isinstance(db, DatabaseURL) else resolve_db(db)
        key = str(url)
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = open_store(url)
            return store

    def use(self, db: object, store: Store) -> None:
        """Use `store` for `db` from now on (a store opened with other options, as the MLflow comparison's fsync
        per commit)."""
        url = db if isinstance(db, DatabaseURL) else resolve_db(db)
        with self._lock:
            self._stores[str(url)] = store

    def forget_in_child(self) -> None:
        """After fork, in the child: set the parent's connections aside (see `_inherited`). The lock may have
        been held by a parent thread at the moment of the fork: the child gets a new one."""
        self._lock = threading.Lock()
        self._inherited.extend(self._stores.values())
        self._stores.clear()

    def close_all(self) -> None:
        """Close every store (tests do this between tests; pipelines need not)."""
        with self._lock:
            for store in self._stores.values():
                try:
                    store.close()
                except Exception:
                    pass
            self._stores.clear()
