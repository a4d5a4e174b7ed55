"""The storage seam: the one place SQL runs. A `Store` is a connection and its dialect, transactions, reads, and
the schema; each backend (`sqlite`, `postgres`) supplies the connection and what its SQL does differently.

The queries are written once, by resource, in small classes that each wrap a store: `runs.Runs` (a run's
lifecycle, the reaper's reads), `auth.Auth` (users and API keys), `dashboard.Dashboard` and `search.ErrorSearch`
(the dashboard's reads), `alerts.AlertStore` (the monitor), `ingest.Ingest` (the ingest API). They run every
statement through their store's `transaction()` and `read()`.

Every public method of those classes is one transaction that has committed when it returns (durable against a
process crash), unless it is called inside a `transaction()` of the same store (same thread): it is then a
savepoint of that one, and commits with it (see `Store.transaction`). Queries use `?` placeholders; a backend
with another paramstyle rewrites them once (`sql`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from ..base.clock import now_iso
from . import schema

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

# A transaction begun inside another one of the same store (the same thread: the store's lock is re-entrant) is
# a savepoint of it. One name will do: SQLite and PostgreSQL release and roll back to the latest savepoint of a
# name, so nested savepoints of one name behave as a stack.
SAVEPOINT = "SAVEPOINT runtracker_nested"
RELEASE_SAVEPOINT = "RELEASE SAVEPOINT runtracker_nested"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT runtracker_nested"
ENCLOSING_LOST = "the enclosing transaction was rolled back (a failed statement or a lost connection)"
# Below this much free space on the database file's filesystem the dashboard says the disk is full: SQLite needs
# room for the WAL's frames and a page or two of every table touched, so a write fails well before 0 bytes.
DISK_FULL_BELOW_BYTES = 2**20
DISK_FULL = ("The disk holding the database is full ({free} free at {directory}): new runs, steps and errors "
             "cannot be recorded until space is freed. What this page shows was recorded before and is intact.")


def disk_full(exc: BaseException) -> bool:
    """Whether a database error says the disk is full: SQLite's SQLITE_FULL, an OS error ENOSPC, PostgreSQL's
    53100 (disk_full). An error of its own class: retrying at once does not help, freeing space does."""
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if getattr(exc, "sqlite_errorcode", None) == 13 or getattr(exc, "sqlstate", None) == "53100":  # SQLITE_FULL
        return True
    return "database or disk is full" in str(exc)


class NoDatabase(Exception):
    """There is no database at the place given (and the caller asked not to create one)."""


class ForeignDatabase(Exception):
    """The database holds tables of the same names that neither runtracker nor the original tool made: it is
    left exactly as it was found."""


# The columns of the seed's tables that every database we write to must have (the original tool's own
# databases have exactly these; runtracker's have more).
SEED_COLUMNS = {
    "runs": ("id", "club_slug", "pipeline", "started_at", "finished_at", "duration_ms", "outcome", "total_created",
             "total_updated", "total_skipped", "total_failed", "summary_json"),
    "run_steps": ("id", "run_id", "club_slug", "step_name", "started_at", "finished_at", "duration_ms", "outcome",
                  "created_count", "updated_count", "skipped_count", "failed_count", "detail_json"),
    "run_errors": ("id", "run_id", "run_step_id", "club_slug", "step_name", "member_identifier", "error_message",
                   "error_stack", "created_at"),
}
NOT_OURS = (
    "the database at {url} has a `{table}` table that is not runtracker's nor the original tool's (it lacks "
    "{missing}); runtracker leaves it as it is and records nothing there: point RUNTRACKER_DB (or --db) at "
    "another database"
)


class Store(ABC):
    """A database holding runs, run_steps and run_errors: its connection, dialect, transactions and schema."""

    dialect: str = ""
    url: str = ""
    # Appended to the SELECT that starts ending a run (`Runs.end_run`): a row lock where writers do not
    # serialise anyway.
    lock_run_row: str = ""
    # What this backend raises when the database cannot be reached now (a server restarting or away): the
    # dashboard answers those with 503 and `Retry-After` (web/outage.py). A file on this machine: none.
    unavailable: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        # One connection per store, shared by every tracker and thread of the process that opened it; the
        # lock serialises transactions on it. It is re-entrant because a signal handler may interrupt the main
        # thread while it holds the lock: see `crash_transaction`.
        self._lock = threading.RLock()
        self._sql_cache: dict[str, str] = {}
        # Which database file the connection is on; it changes when the file is replaced (see `follow_file`).
        self.generation = 0
        # How many transactions of this store the thread holding `_lock` is inside (0: none; more than 1: the
        # inner ones are savepoints). Only that thread changes it.
        self._nesting = 0

    def disk_problem(self) -> str | None:
        """A sentence for the dashboard when the database's disk is full (`DISK_FULL`), else None. A server's
        disk is the server's: None (its writes fail with `disk_full` errors)."""
        return None

    def follow_file(self) -> str | None:
        """If the database file this store writes to was deleted or replaced since it was opened, open the one
        now at its path (created if need be) and say what happened; else None. A server has no file: None."""
        return None

    # -- backend hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """A cursor inside a write transaction that commits on success and rolls back on error.

        Inside another transaction of this store (the same thread): a savepoint of it, released on success
        (its writes then commit or roll back with the enclosing transaction) and rolled back alone on error, so
        that a caller may catch the error and go on. So several store calls can be made one transaction — one
        commit, all or nothing — by calling them inside `with store.transaction():` (the ingest API's requests
        with an idempotency key: `storage.ingest.Ingest.once`). If the enclosing transaction is gone (SQLite
        rolled it all back after an I/O error), a nested one raises instead of writing on its own."""

    @abstractmethod
    def crash_transaction(self) -> AbstractContextManager[Any]:
        """Like `transaction`, for crash handlers that may have interrupted one of our own transactions."""

    @abstractmethod
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def directory(self) -> str | None:
        """The directory the database lives in, if it is a file (where its crash files go)."""
        return None

    def sql(self, sql: str) -> str:
        """A query written with `?` placeholders, in this backend's paramstyle."""
        return sql

    def insert_returning_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        cur.execute(self.sql(sql + " RETURNING id"), params)
        return int(cur.fetchone()[0])

    def checkpoint(self) -> bool:
        """Keep the write-ahead log bounded, without waiting long for anyone (the monitor calls it every pass);
        whether it was emptied. SQLite's WAL file is truncated; a server manages its own: True."""
        return True

    # What a backend does differently when a run's records are written (see `runs.Runs`).
    def retry_crash_write(self, write: Callable[[], Any]) -> Any:
        """A crash write, tried again where the backend can lose its connection (see PostgresStore)."""
        return write()

    def hold_run(self, cur: Any, run_id: int) -> None:
        """Inside a transaction adding or ending a step: wait for an end of the run in progress, and keep the
        run from being ended until this commits (a backend whose writers do not serialise takes a share lock on
        the run's row here)."""
        return None

    # -- opening ----------------------------------------------------------------------------------------------
    def open(self) -> Store:
        """Make sure the database is ours (or empty), then prepare the connection and upgrade the schema.

        A database whose `runs`, `run_steps` or `run_errors` table lacks the seed's columns belongs to another
        tool: ForeignDatabase, before anything is written to it (SQLite's journal mode included)."""
        for table, required in SEED_COLUMNS.items():
            present = set(self._columns(table))
            missing = [column for column in required if column not in present]
            if present and missing:
                raise ForeignDatabase(NOT_OURS.format(url=self.url, table=table, missing=", ".join(missing)))
        self._prepare()
        self.upgrade_schema()
        return self

    def _prepare(self) -> None:
        """Connection settings that write to the database (SQLite's journal mode)."""
        return None

    @abstractmethod
    def _columns(self, table: str) -> list[str]:
        """The columns of a table; empty if there is no such table."""

    def has_tables(self) -> bool:
        """Whether the database holds runtracker's (or the original tool's) tables."""
        return bool(self._columns("runs"))

    # -- schema --------------------------------------------------------------------------------------------
    def upgrade_schema(self) -> int:
        """Bring the schema to the latest version; returns the version the database had before.

        An up-to-date database is only read: a process starting while another holds the write lock for long
        does not wait for it here (its start_run then waits, and is written later if need be)."""
        if self._columns("schema_migrations") and self.schema_version() >= schema.LATEST:
            return schema.LATEST
        with self.transaction() as cur:
            self._lock_for_upgrade(cur)
            cur.execute(schema.BOOKKEEPING)
            cur.execute("SELECT MAX(version) FROM schema_migrations")
            current = cur.fetchone()[0] or 0
            for migration in schema.MIGRATIONS:
                if migration.version <= current:
                    continue
                for step in schema.statements(migration, self.dialect):
                    if isinstance(step, schema.Call):
                        getattr(self, step.method)(cur)
                    else:
                        self._apply(cur, step)
                cur.execute(
                    self.sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
                    (migration.version, migration.name, now_iso()),
                )
        return int(current)

    def rename_old_indexes(self, cur: Any) -> None:
        """Migration 6: runtracker's old names of two of the original's indexes (schema.OLD_INDEX_NAMES). SQLite
        cannot rename an index: they are dropped, and made again under the original's names."""
        for old in schema.OLD_INDEX_NAMES:
            cur.execute(f"DROP INDEX IF EXISTS {old}")

    @abstractmethod
    def conform_seed_tables(self, cur: Any) -> None:
        """Migration 6: make the three tables' definitions the original tool's (see schema.SEED_TABLES),
        keeping every row and every other column; empty club_slug, step_name and error_message get the
        defaults (DEFAULT_CLUB_SLUG, NO_STEP, NO_MESSAGE)."""

    def _lock_for_upgrade(self, cur: Any) -> None:
        """Make concurrent upgrades wait for each other (SQLite's BEGIN IMMEDIATE already does)."""
        return None

    def _apply(self, cur: Any, statement: str) -> None:
        cur.execute(statement)

    def schema_version(self) -> int:
        rows = self.read("SELECT MAX(version) AS v FROM schema_migrations")
        return int(rows[0]["v"] or 0)

    def change_token(self) -> object:
        """A value that differs whenever a transaction may have committed to the database since it was last
        read (by any process, this one included); equal values mean nothing changed in between. Readers use it
        to reuse what they read (the dashboard's overview). None: the backend cannot tell (never equal)."""
        return None

    # -- runtracker migrate: copying a history into this database -------------------------------------------
    def lock_for_copy(self, cur: Any) -> None:
        """Taken first in a copy's transaction, so that no writer of this database (a pipeline already pointed
        at it) inserts rows, or takes ids, between the emptiness check and the commit."""
        return None

    def reset_ids(self, cur: Any, tables: Sequence[str]) -> None:
        """After inserting explicit ids: make the next generated id come after them (SQLite's AUTOINCREMENT
        bookkeeping follows explicit ids on its own)."""
        return None
