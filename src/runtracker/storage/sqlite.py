"""The embedded default: one SQLite file in WAL mode."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..base.outcomes import DEFAULT_CLUB_SLUG, NO_MESSAGE, NO_STEP
from . import schema
from .base import (
    DISK_FULL,
    DISK_FULL_BELOW_BYTES,
    ENCLOSING_LOST,
    RELEASE_SAVEPOINT,
    ROLLBACK_TO_SAVEPOINT,
    SAVEPOINT,
    NoDatabase,
    Store,
)

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

BUSY_TIMEOUT_S = 10.0
# A crash is recorded even while a foreign process holds the write lock for a while.
CRASH_BUSY_TIMEOUT_MS = 20_000
FILE_LOOK_INTERVAL_S = 0.001
# The WAL file is cut back to this size whenever SQLite restarts it (`PRAGMA journal_size_limit`), and a
# checkpoint (`checkpoint`) truncates it to nothing: it stays bounded even where readers never pause.
WAL_LIMIT_BYTES = 4 * 2**20
# How long a checkpoint waits for the readers of an older snapshot and for a writer: it holds the write lock
# meanwhile, so pipelines wait as long at most (new readers read the database file and do not hold it up).
CHECKPOINT_WAIT_MS = 100
# A smaller WAL is left to SQLite's own checkpoints: the write lock is not taken for nothing every pass.
CHECKPOINT_FROM_BYTES = 2**20


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: str, *, synchronous: str = "NORMAL", create: bool = True) -> None:
        super().__init__()
        self.path = path
        self.url = f"sqlite:///{path}"
        if not create and not os.path.exists(path):
            raise NoDatabase(f"there is no database at {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves. In WAL a transaction that starts as a read
        # and later writes gets SQLITE_BUSY at once, without waiting for the busy timeout.
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        self._synchronous = synchronous
        # Set only while a crash write is tried again on a connection of its own (see `retry_crash_write`).
        self._crash_connection: sqlite3.Connection | None = None
        self._file = _identity(path)
        self._next_look = 0.0

    def follow_file(self) -> str | None:
        # Before a tracking call: a file deleted or replaced (`rm`, a restore or a deploy that moves another
        # file into place) would otherwise take every later write into the old, unlinked file, where nobody
        # ever sees it, while every call reports success. One look at the path (a stat) at most every
        # millisecond: a pipeline's calls are mostly further apart than that, so each is checked, while a
        # burst of calls (record_error in a loop) pays one stat per millisecond, not one per call (a stat at
        # every call cost 4% of a run's lifecycle, bench/lifecycle.py). Calls within that millisecond after
        # the file went still write into the old one; the note the run gets in the new file says so.
        clock = time.monotonic()
        if clock < self._next_look:
            return None
        self._next_look = clock + FILE_LOOK_INTERVAL_S
        if _identity(self.path) == self._file:
            return None
        now = _identity(self.path)
        what = "deleted" if now is None else "replaced"
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with self._lock:
            old, self._conn = self._conn, sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                                          check_same_thread=False)
            try:
                old.close()
            except sqlite3.Error:
                pass
            self.generation += 1
            self.open()
        return what

    def _prepare(self) -> None:
        # Only once the file is known to be ours (or new): a file another tool made keeps its journal mode.
        self._enable_wal()
        self._file = _identity(self.path)
        # NORMAL in WAL is durable against a process crash (not against power loss); FULL is selectable.
        self._conn.execute(f"PRAGMA synchronous={self._synchronous}")
        self._conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")

    def checkpoint(self) -> bool:
        # SQLite's automatic checkpoints are passive: they copy what no reader still needs and restart the WAL
        # only at a moment when no reader uses it. Under readers that never pause (a dashboard, a monitor
        # every 0.25 s, pipelines) that moment seldom comes and the WAL only grows (99 MB in the soak). A
        # TRUNCATE checkpoint waits for the readers of older snapshots instead, briefly, and empties the file.
        try:
            if os.path.getsize(self.path + "-wal") < CHECKPOINT_FROM_BYTES:
                return True
        except OSError:  # no WAL file: nothing to do
            return True
        with self._lock:
            if self._conn.in_transaction:
                return False
            self._conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
            try:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError:  # locked, or the disk is full: the next pass tries again
                return False
            finally:
                self._conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            return not busy

    def disk_problem(self) -> str | None:
        # One statvfs (a system call, no database access): the dashboard asks at every page. Reads go on with a
        # full disk (they write nothing), so the pages answer; this says why nothing new appears.
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            st = os.statvfs(directory)
        except OSError:
            return None
        free = st.f_bavail * st.f_frsize
        if free >= DISK_FULL_BELOW_BYTES:
            return None
        return DISK_FULL.format(free=f"{free // 1024:,} KiB", directory=directory)

    def _columns(self, table: str) -> list[str]:
        return [row["name"] for row in self.read(f"PRAGMA table_info({table})")]

    def _enable_wal(self) -> None:
        # Several processes opening a new database at once: switching it to WAL needs an exclusive lock, and
        # SQLite answers "database is locked" at once, without the busy handler, to all but one of them (they
        # would otherwise wait on each other's shared locks). Try again until the busy timeout.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    @contextmanager
    def crash_transaction(self) -> Iterator[sqlite3.Cursor]:
        # A signal handler runs in the main thread between bytecodes, possibly while that same thread is
        # inside `transaction` above (the RLock lets it in). Writing on the connection would then silently
        # join the interrupted transaction, which is rolled back when the process dies; a second connection
        # would wait on our own write lock forever. So: roll the interrupted call back (it never returned,
        # so nothing that was promised is lost) and write the crash in a transaction of its own.
        # The interrupted transactions' nesting is set aside for this one and given back after: if their frames
        # ever resume, their savepoints find the transaction gone and raise, and their COMMIT fails.
        with self._lock:
            nesting, self._nesting = self._nesting, 0
            if self._conn.in_transaction:
                self._conn.rollback()
            if self._crash_connection is not None:
                try:
                    yield from _write_on(self._crash_connection)
                finally:
                    self._nesting = nesting
                return
            self._conn.execute(f"PRAGMA busy_timeout={CRASH_BUSY_TIMEOUT_MS}")
            try:
                with self.transaction() as cur:
                    yield cur
            finally:
                self._nesting = nesting
                self._conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")

    def retry_crash_write(self, write: Callable[[], Any]) -> Any:
        # The interrupted call may have left a statement in progress on the connection: an INSERT ... RETURNING
        # whose row was not read yet, a SELECT not fetched to its end. The crash's COMMIT on that connection then
        # fails ("SQL statements in progress"), or its old read snapshot makes the write busy at once. The
        # rollback above has released our write lock; a connection of its own has neither problem. (Found by
        # bench/soak.py: about 2 in 100 signal deaths were left to the reaper.) Both fail at once; a write that
        # failed only after the whole busy timeout met another process's lock, which a second connection
        # would wait for as long again, holding the dying process up twice as long: that one is not retried.
        began = time.monotonic()
        try:
            return write()
        except sqlite3.OperationalError:
            if time.monotonic() - began >= CRASH_BUSY_TIMEOUT_MS / 1000:
                raise
            conn = sqlite3.connect(self.path, timeout=CRASH_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            self._crash_connection = conn
            try:
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                return write()
            finally:
                self._crash_connection = None
                conn.close()

    @property
    def directory(self) -> str | None:
        return os.path.dirname(os.path.abspath(self.path))

    @property
    def connection(self) -> sqlite3.Connection:
        """The store's connection (benchmarks trace it; writing on it bypasses the store's lock)."""
        return self._conn

    def change_token(self) -> object:
        # data_version changes when another connection committed; total_changes counts this connection's own
        # writes. The generation changes when the file was replaced and the connection with it.
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            return (self.generation, version, self._conn.total_changes)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def conform_seed_tables(self, cur: Any) -> None:
        # SQLite cannot change a column's constraints: each table that differs is rebuilt, as SQLite's own
        # documentation describes (a new table, the rows copied, the old one dropped, the new one renamed, its
        # indexes and triggers made again), inside the migration's transaction: all of it or none of it.
        cur.execute("PRAGMA foreign_keys")
        if cur.fetchone()[0]:  # dropping `runs` would then delete every step and error through ON DELETE CASCADE
            raise RuntimeError("cannot conform the tables while SQLite enforces foreign keys (PRAGMA foreign_keys)")
        for table, ddl in schema.SEED_TABLES.items():
            self._conform_table(cur, table, ddl)

    def _conform_table(self, cur: Any, table: str, ddl: str) -> None:
        new = f"{table}__conformed"
        cur.execute(f"DROP TABLE IF EXISTS {new}")
        cur.execute(ddl.replace("{table}", new).replace("{pk}", schema.PK["sqlite"]))
        old = _table_info(cur, table)
        target = _table_info(cur, new)
        if all(old.get(name, (None,))[1:] == spec[1:] for name, spec in target.items()):
            cur.execute(f"DROP TABLE {new}")  # made by the original tool, or conformed already
            return
        for name, (declared, notnull, default) in old.items():
            if name not in target:  # runtracker's own columns, and any another tool added: kept as they are
                cur.execute(f'ALTER TABLE {new} ADD COLUMN "{name}" {declared}'
                            + (f" DEFAULT {default}" if default is not None else "")
                            + (" NOT NULL" if notnull and default is not None else ""))
        fill = {"club_slug": f"'{DEFAULT_CLUB_SLUG}'"}
        if table == "run_errors":
            fill.update(step_name=f"'{NO_STEP}'", error_message=f"'{NO_MESSAGE}'")
        columns = ", ".join(f'"{name}"' for name in old)
        values = ", ".join(f'COALESCE("{name}", {fill[name]})' if name in fill else f'"{name}"' for name in old)
        cur.execute("SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger')"
                    " AND sql IS NOT NULL", (table,))
        dependents = [sql for _, sql in cur.fetchall()]
        cur.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
        sequence = cur.fetchone()
        cur.execute(f"INSERT INTO {new} ({columns}) SELECT {values} FROM {table}")
        cur.execute(f"DROP TABLE {table}")
        cur.execute(f"ALTER TABLE {new} RENAME TO {table}")
        for sql in dependents:
            cur.execute(sql)
        if sequence is not None:  # ids of deleted runs are never given out again
            cur.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (sequence[0], table))

    def _apply(self, cur: Any, statement: str) -> None:
        # Adopting a database made by the seed tool or a half-applied upgrade: a column that already
        # exists is not an error.
        try:
            cur.execute(statement)
        except sqlite3.OperationalError as exc:
            if "duplicate column name" not in str(exc):
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, or None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _table_info(cur: Any, table: str) -> dict[str, tuple[str, int, str | None]]:
    """{column: (declared type, not null, default)} of a table, in order."""
    cur.execute(f"PRAGMA table_info({table})")
    return {name: (declared, notnull, default) for _, name, declared, notnull, default, _ in cur.fetchall()}


def _write_on(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """`BEGIN IMMEDIATE` ... `COMMIT` on a connection of the crash write's own (see `retry_crash_write`)."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    cur.execute("COMMIT")


class _Transaction:
    """`BEGIN IMMEDIATE` … `COMMIT` under the store's lock; rolled back on any error, COMMIT's own included.
    Inside another transaction of the store: a savepoint of it (see `Store.transaction`).

    A class rather than a generator-based context manager: every public call of a pipeline runs one, and this
    is a tenth of a short call's cost less.
    """

    __slots__ = ("_store", "_conn", "_cur", "_nested")

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Cursor:
        store = self._store
        store._lock.acquire()
        try:
            conn = self._conn = store._conn
            cur = self._cur = conn.cursor()
            self._nested = store._nesting > 0
            if not self._nested:
                cur.execute("BEGIN IMMEDIATE")
            elif conn.in_transaction:
                cur.execute(SAVEPOINT)
            else:  # SQLite rolled the enclosing transaction back (an I/O error): writing now would autocommit
                raise sqlite3.OperationalError(ENCLOSING_LOST)
            store._nesting += 1
        except BaseException:
            # A KeyboardInterrupt (or another signal's exception) right after BEGIN: the caller never gets the
            # transaction, so nobody would end it, and SQLite's write lock would stay held by a pipeline that
            # catches the interrupt and goes on.
            if not self._nested and conn.in_transaction:
                conn.rollback()
            store._lock.release()
            raise
        return cur

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        store = self._store
        store._nesting -= 1
        try:
            if self._nested:
                self._leave_savepoint(exc_type is None)
                return
            if exc_type is None:
                try:
                    self._cur.execute("COMMIT")
                    return
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.rollback()
                    raise
            if self._conn.in_transaction:
                self._conn.rollback()
        finally:
            store._lock.release()

    def _leave_savepoint(self, ok: bool) -> None:
        conn = self._conn
        if not conn.in_transaction:  # the whole transaction is gone: the enclosing one fails at its COMMIT
            if ok:
                raise sqlite3.OperationalError(ENCLOSING_LOST)
            return
        try:
            if ok:
                self._cur.execute(RELEASE_SAVEPOINT)
                return
            self._cur.execute(ROLLBACK_TO_SAVEPOINT)
            self._cur.execute(RELEASE_SAVEPOINT)
        except BaseException:
            # What this savepoint wrote cannot be undone alone: undo everything, so nothing of it commits. The
            # enclosing transaction's next savepoint and its COMMIT then fail.
            conn.rollback()
            raise
