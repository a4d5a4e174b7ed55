"""PostgreSQL: several hosts, one dashboard database. psycopg 3, imported only when a postgresql:// URL is used.

Same queries (the resource classes over `base.Store`), same schema and migrations (`schema.py`), same promises
as SQLite: every call that returns has committed, and a server that is down, slow or restarting never breaks
the pipeline (calls fail, the guard logs them, the pipeline goes on). What is specific to a server over a
network is here:

- Reconnecting. A connection lost since the previous call (server restart, idle timeout, failover) is noticed
  by the first statement of the next transaction, its `BEGIN`; nothing of that transaction has reached the
  server yet, so it is started again, once, on a fresh connection. A connection lost *during* a transaction
  fails that call (it may or may not have committed, so it is not replayed) and the next call reconnects.
- Not waiting for a server that is unreachable. After a failed connect, calls fail at once for a short while
  (doubling up to 30 s, or up to 2 s while connects are refused at once, as during a restart) instead of each
  waiting for the connect timeout; crash writes ignore this pause.
- Bounded waits: a connect timeout, TCP keepalives, and a statement timeout (10 s, 20 s for crash writes,
  as SQLite's busy timeouts) unless the URL sets its own (`options=-c statement_timeout=...`).
- Crash writes are retried on fresh connections for a few seconds. A crash that happens while the server
  stays unreachable longer is not lost: the run stays `running` and the reaper ends it once the server is back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..base.outcomes import DEFAULT_CLUB_SLUG, NO_MESSAGE, NO_STEP
from . import schema
from .base import ENCLOSING_LOST, RELEASE_SAVEPOINT, ROLLBACK_TO_SAVEPOINT, SAVEPOINT, Store

MISSING_DRIVER = (
    "PostgreSQL support needs the psycopg driver, which is not installed: pip install runtracker[postgres]"
)
SERVER_PAUSED = "the PostgreSQL server was unreachable a moment ago; trying again in a few seconds"

# Connection defaults; anything the URL sets itself wins.
CONNECT_DEFAULTS = {
    "connect_timeout": "3",
    "application_name": "runtracker",
    # A peer that vanished (host lost, network partition) is noticed within about 25 s instead of hanging.
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "25000",
}
STATEMENT_TIMEOUT_MS = 10_000
CRASH_STATEMENT_TIMEOUT_MS = 20_000
# How long a crash write keeps trying fresh connections before it leaves the run to the reaper.
CRASH_RETRY_S = 5.0
PAUSE_FIRST_S = 0.5
PAUSE_MAX_S = 30.0
PAUSE_MAX_QUICK_S = 2.0  # after connects that failed at once (see `_connection`)
QUICK_FAILURE_S = 1.5  # well under the connect timeout (3 s): not a timeout, even on a loaded machine

_QUOTED = re.compile(r"('(?:[^']|'')*')")


def driver() -> Any:
    """The psycopg module, or an ImportError naming the extra to install."""
    try:
        import psycopg
    except ImportError as exc:
        raise ImportError(MISSING_DRIVER) from exc
    return psycopg


def to_pyformat(sql: str) -> str:
    """`?` placeholders to psycopg's `%s`; a literal `%` becomes `%%`. Quoted strings keep their `?`."""
    parts = _QUOTED.split(sql)
    for i, part in enumerate(parts):
        part = part.replace("%", "%%")
        parts[i] = part if i % 2 else part.replace("?", "%s")
    return "".join(parts)


def masked(dsn: str) -> str:
    """The URL without its password, for messages."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)  # an empty user name too: postgresql://:pw@host
    return re.sub(r"([?&]password=)[^&]*", r"\1***", dsn)


class PostgresStore(Store):
    dialect = "postgresql"
    # Enders of one run (its owner, a crash handler, a reaper on another host) queue on the run's row, so
    # under READ COMMITTED the loser sees the winner's outcome before it touches steps or errors. NO KEY:
    # inserting steps and errors of the run (a foreign-key share lock on its row) is not held up by it.
    lock_run_row = " FOR NO KEY UPDATE"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._pg = driver()
        # A lost connection, a server that refuses or is starting up or shutting down, a statement timeout.
        self.unavailable = (self._pg.OperationalError,)
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(dsn)
        for key, value in CONNECT_DEFAULTS.items():
            params.setdefault(key, value)
        self._conninfo = make_conninfo("", **params)
        self._statement_timeout = "statement_timeout" not in str(params.get("options") or "")
        self.url = masked(dsn)
        self._conn: Any = None
        # How many of our calls are in progress in the thread holding `_lock`: more than zero when a
        # crash handler (a signal handler) interrupted one of them. See `crash_transaction`.
        self._depth = 0
        self._pause_until = 0.0
        self._pause = PAUSE_FIRST_S
        # Connections abandoned by a crash handler; the interrupted frame may still hold them.
        self._abandoned: list[Any] = []

    # -- connection --------------------------------------------------------------------------------------
    def _connection(self, *, crash: bool = False) -> Any:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        self._conn = None
        if not crash and time.monotonic() < self._pause_until:
            raise self._pg.OperationalError(SERVER_PAUSED)
        started = time.monotonic()
        try:
            conn = self._pg.connect(self._conninfo, autocommit=True)
        except self._pg.OperationalError:
            now = time.monotonic()
            self._pause_until = now + self._pause
            # A connect that failed at once (refused: a server restarting, or one starting up or shutting down
            # that says so) costs nothing to try again, and trying often finds a restarted server within
            # seconds; one that waited (a host gone, packets dropped) costs the connect timeout each time.
            quick = now - started < QUICK_FAILURE_S
            self._pause = min(self._pause * 2, PAUSE_MAX_QUICK_S if quick else PAUSE_MAX_S)
            raise
        self._pause, self._pause_until = PAUSE_FIRST_S, 0.0
        if self._statement_timeout:
            conn.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
        self._conn = conn
        return conn

    def _lost(self, conn: Any) -> bool:
        return conn is None or conn.closed

    def _begin(self, timeout_ms: int | None = None, *, crash: bool = False) -> Any:
        # Autocommit connection with an explicit BEGIN, as the SQLite store does: the BEGIN is the first
        # statement of every call, so a dead connection is found before anything of the call was sent.
        begin = "BEGIN" if timeout_ms is None else f"BEGIN; SET LOCAL statement_timeout = {int(timeout_ms)}"
        for attempt in (1, 2):
            conn = self._connection(crash=crash)
            try:
                cur = conn.cursor()
                cur.execute(begin)
                return cur
            except self._pg.OperationalError:
                if attempt == 2 or not self._lost(conn):
                    raise
        raise AssertionError("unreachable")

    def _finish(self, cur: Any) -> Iterator[Any]:
        self._nesting += 1
        try:
            yield cur
        except BaseException:
            self._rollback(cur.connection)
            raise
        else:
            # COMMIT of a failed transaction answers ROLLBACK without an error, and with none in progress only
            # warns: neither may look like a commit (a savepoint's failure may have undone the whole of it).
            if cur.connection.info.transaction_status != self._pg.pq.TransactionStatus.INTRANS:
                self._rollback(cur.connection)
                raise self._pg.OperationalError(ENCLOSING_LOST)
            cur.execute("COMMIT")
        finally:
            self._nesting -= 1

    def _savepoint(self) -> Iterator[Any]:
        """A transaction inside another one of this store: a savepoint of it (see `Store.transaction`)."""
        conn = self._conn
        if conn is None or conn.closed or conn.info.transaction_status != self._pg.pq.TransactionStatus.INTRANS:
            # No reconnecting here: the enclosing transaction was on the lost connection, or has failed.
            raise self._pg.OperationalError(ENCLOSING_LOST)
        cur = conn.cursor()
        cur.execute(SAVEPOINT)
        self._nesting += 1
        try:
            yield cur
        except BaseException:
            try:
                cur.execute(ROLLBACK_TO_SAVEPOINT)
                cur.execute(RELEASE_SAVEPOINT)
            except Exception:
                # What it wrote cannot be undone alone: undo everything, so nothing of it commits; the enclosing
                # transaction's next savepoint then fails, and so does its end (see `transaction`).
                self._rollback(conn)
            raise
        else:
            cur.execute(RELEASE_SAVEPOINT)
        finally:
            self._nesting -= 1

    def _rollback(self, conn: Any) -> None:
        if conn.closed:
            return
        try:
            if conn.info.transaction_status != self._pg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except Exception:
            # The connection cannot even roll back: drop it, the server rolls back when it goes.
            if self._conn is conn:
                self._conn = None
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock:
            self._depth += 1
            try:
                yield from self._savepoint() if self._nesting else self._finish(self._begin())
            finally:
                self._depth -= 1

    @contextmanager
    def crash_transaction(self) -> Iterator[Any]:
        with self._lock:
            interrupted = self._abandon_interrupted() if self._depth else None
            # The interrupted transactions' nesting is set aside for this one and given back after: if their
            # frames ever resume, their savepoints find no transaction on the new connection and raise.
            nesting, self._nesting = self._nesting, 0
            self._depth += 1
            try:
                cur = self._begin(CRASH_STATEMENT_TIMEOUT_MS, crash=True)
                if interrupted is not None:
                    # Its open transaction may hold the run's row; ending its backend rolls it back (the
                    # call never returned, so nothing promised is lost) and frees the row for this write.
                    cur.execute("SELECT pg_terminate_backend(%s)", (interrupted,))
                yield from self._finish(cur)
            finally:
                self._depth -= 1
                self._nesting = nesting

    def _abandon_interrupted(self) -> int | None:
        """A signal handler interrupted one of our calls in this thread (the RLock let it in).

        That call's connection is in the middle of a protocol exchange and psycopg's own lock on it is held
        by the interrupted frame: using it would deadlock. Set it aside and return its backend pid.
        """
        conn, self._conn = self._conn, None
        if conn is None or conn.closed:
            return None
        self._abandoned.append(conn)
        return int(conn.info.backend_pid)

    def retry_crash_write(self, write: Callable[[], Any]) -> Any:
        # Ending a run is compare-and-set, so trying again after a lost connection cannot end it twice.
        deadline = time.monotonic() + CRASH_RETRY_S
        delay = 0.1
        while True:
            try:
                return write()
            except self._pg.OperationalError:
                if not self._lost(self._conn) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def hold_run(self, cur: Any, run_id: int) -> None:
        # Writers of one database do not serialise here. Without this share lock a step could be added between
        # an end's look at the open steps and its commit, and stay open in an ended run; and an owner's end of
        # a step, waiting on the step's row while a reaper ends the run, would recheck it against a snapshot
        # from before the reaper's commit and miss that the reaper (whose step ends it may replace) ended it.
        # The lock waits for an end in progress (it holds the row FOR NO KEY UPDATE); the next statement then
        # sees that end. An end waits for the step's commit.
        cur.execute("SELECT 1 FROM runs WHERE id = %s FOR SHARE", (run_id,))

    def change_token(self) -> object:
        # The server's snapshot: its xmax moves when any transaction takes an id (any write, in any database
        # of the cluster), and its list of transactions in progress changes when one of them ends, committed
        # or not. An equal snapshot means no transaction ended in between: what was read is still what a read
        # would find. (Other databases' writes make it change too: a token that changes too often costs a
        # read, never a stale page.)
        return self.read("SELECT txid_current_snapshot()::text AS s")[0]["s"]

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        query = self.sql(sql)
        with self._lock:
            self._depth += 1
            try:
                for attempt in (1, 2):
                    conn = self._connection()
                    try:
                        with conn.cursor(row_factory=dict_row) as cur:
                            cur.execute(query, tuple(params))
                            return cur.fetchall()
                    except self._pg.OperationalError:
                        # A read changes nothing: one more try on a fresh connection is always safe.
                        if attempt == 2 or not self._lost(conn):
                            raise
                raise AssertionError("unreachable")
            finally:
                self._depth -= 1

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    # -- dialect -----------------------------------------------------------------------------------------
    def sql(self, sql: str) -> str:
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = to_pyformat(sql)
        return cached

    def rename_old_indexes(self, cur: Any) -> None:
        # A rename is a catalog change: rebuilding 7,000,000 index entries to drop the old ones after is not.
        cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        present = {row[0] for row in cur.fetchall()}
        for old, new in schema.OLD_INDEX_NAMES.items():
            if old in present:
                cur.execute(f"ALTER INDEX {old} RENAME TO {new}" if new not in present else f"DROP INDEX {old}")

    def conform_seed_tables(self, cur: Any) -> None:
        # In place: an UPDATE of the empty values, then the constraints. SET NOT NULL reads the table once.
        counts = {"runs": ("total_created", "total_updated", "total_skipped", "total_failed"),
                  "run_steps": ("created_count", "updated_count", "skipped_count", "failed_count"), "run_errors": ()}
        fill = {"club_slug": DEFAULT_CLUB_SLUG, "step_name": NO_STEP,
                "error_message": NO_MESSAGE}
        for table, count_columns in counts.items():
            required = ["club_slug"] + (["step_name", "error_message"] if table == "run_errors" else [])
            # One pass per table: each updated row is written once, whichever of its columns were empty.
            cur.execute(f"UPDATE {table} SET " + ", ".join(f"{c} = COALESCE({c}, %s)" for c in required)
                        + " WHERE " + " OR ".join(f"{c} IS NULL" for c in required), [fill[c] for c in required])
            changes = [f"ALTER COLUMN club_slug SET DEFAULT '{DEFAULT_CLUB_SLUG}'"]
            changes += [f"ALTER COLUMN {column} SET NOT NULL" for column in required]
            changes += [f"ALTER COLUMN {column} DROP NOT NULL" for column in count_columns]
            if table == "runs":
                changes.append("ALTER COLUMN outcome DROP DEFAULT")  # the original has none; we always name it
            cur.execute(f"ALTER TABLE {table} " + ", ".join(changes))

    def _columns(self, table: str) -> list[str]:
        rows = self.read("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                         " AND table_name = ? ORDER BY ordinal_position", (table,))
        return [row["column_name"] for row in rows]

    def _lock_for_upgrade(self, cur: Any) -> None:
        # Several processes starting at once: the first applies the migrations, the others wait here and then
        # find them applied. CREATE TABLE IF NOT EXISTS alone is not safe under concurrency in PostgreSQL.
        # The key includes the schema, so databases that live side by side in schemas do not wait on each other.
        # No statement timeout for an upgrade: on a long history one migration rewrites millions of rows
        # (measured by bench/upgrade.py), and giving up halfway would only roll it back to try again next time.
        # The timeout the connection had comes back with the transaction's end (SET LOCAL).
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('runtracker.migrate:' || COALESCE(current_schema(), '')))"
        )

    def _apply(self, cur: Any, statement: str) -> None:
        # As the SQLite store: adopting a database whose columns already exist (a half-applied upgrade).
        if "ADD COLUMN " in statement and "IF NOT EXISTS" not in statement:
            statement = statement.replace("ADD COLUMN ", "ADD COLUMN IF NOT EXISTS ", 1)
        cur.execute(statement)

    def lock_for_copy(self, cur: Any) -> None:
        cur.execute("LOCK TABLE runs, run_steps, run_errors IN EXCLUSIVE MODE")

    def reset_ids(self, cur: Any, tables: Sequence[str]) -> None:
        for table in tables:
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1"
                        f" FROM {table}), false)")
