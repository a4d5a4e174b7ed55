"""The storage seam: one SQL store holds the queries; each backend supplies a connection and its dialect.

Every public method is one transaction that has committed when it returns (durable against a process crash),
unless it is called inside a `transaction()` of the same store (same thread): it is then a savepoint of that
one, and commits with it (see `Store.transaction`). Queries use `?` placeholders; a backend with another
paramstyle rewrites them once (`sql`).

Ending a run is one method, `end_run`, whoever ends it: the run's own process (its `end_run`, a crash hook, the
exit hook, `runtracker exec`) or the reaper. See its docstring for the rules it applies in one transaction.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from ..base.clock import now_iso, now_ms
from ..base.outcomes import DEFAULT_CLUB_SLUG, RUNNING
from ..base.records import Record
from . import schema

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("runtracker")

RUN_COLUMNS = (
    "id, club_slug, pipeline, started_at, finished_at, duration_ms, outcome, total_created, total_updated,"
    " total_skipped, total_failed, summary_json, hostname, pid, process_started_at, heartbeat_at, exit_code,"
    " process_key, reaped_at, reap_reason, ended_by, started_by"
)
STEP_COLUMNS = (
    "id, run_id, club_slug, step_name, started_at, finished_at, duration_ms, outcome, created_count,"
    " updated_count, skipped_count, failed_count, detail_json"
)
ERROR_COLUMNS = (
    "id, run_id, run_step_id, club_slug, step_name, member_identifier, error_message, error_stack, created_at"
)

# (run_id, run_step_id, club_slug, step_name, member_identifier, error_message, error_stack, created_at)
ErrorRow = tuple[int, int | None, str | None, str | None, str | None, str | None, str | None, str]

# Who ended a run (runs.ended_by).
OWNER = "owner"
REAPER = "reaper"

# A transaction begun inside another one of the same store (the same thread: the store's lock is re-entrant) is
# a savepoint of it. One name will do: SQLite and PostgreSQL release and roll back to the latest savepoint of a
# name, so nested savepoints of one name behave as a stack.
SAVEPOINT = "SAVEPOINT runtracker_nested"
RELEASE_SAVEPOINT = "RELEASE SAVEPOINT runtracker_nested"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT runtracker_nested"
ENCLOSING_LOST = "the enclosing transaction was rolled back (a failed statement or a lost connection)"

# What `end_run` did.
ENDED = "ended"
OVERRODE_REAPER = "overrode_reaper"  # the owner replaced the reaper's verdict with its own account
ALREADY_ENDED = "already_ended"  # nothing written: someone else ended it first (or it does not exist)


class StepEnd(Record):
    """How one step ends."""

    __slots__ = ("step_id", "outcome", "finished_at", "duration_ms", "created", "updated", "skipped", "failed",
                 "detail_json")

    def __init__(self, step_id: int, outcome: str, finished_at: str, duration_ms: int, created: int = 0,
                 updated: int = 0, skipped: int = 0, failed: int = 0, detail_json: str | None = None) -> None:
        self.step_id = step_id
        self.outcome = outcome
        self.finished_at = finished_at
        self.duration_ms = duration_ms
        self.created = created
        self.updated = updated
        self.skipped = skipped
        self.failed = failed
        self.detail_json = detail_json


class RunEnd(Record):
    """Everything one end of a run writes (built inside `end_run`'s transaction from `RunFacts`)."""

    __slots__ = ("outcome", "finished_at", "duration_ms", "summary_json", "exit_code", "steps", "errors", "reaped",
                 "output_tail")

    def __init__(self, outcome: str, finished_at: str, duration_ms: int, summary_json: str | None = None,
                 exit_code: int | None = None, steps: Sequence[StepEnd] = (), errors: Sequence[ErrorRow] = (),
                 reaped: tuple[str, str] | None = None, output_tail: str | None = None) -> None:
        self.outcome = outcome
        self.finished_at = finished_at
        self.duration_ms = duration_ms
        self.summary_json = summary_json
        self.exit_code = exit_code
        self.steps = steps  # ends of the steps still open; applied only to steps still open
        self.errors = errors  # e.g. the crash row
        self.reaped = reaped  # (reaped_at, reason) when the reaper ends the run
        self.output_tail = output_tail  # `runtracker exec`: the end of the command's output


class RunFacts(Record):
    """What the database holds about a run at the moment it is ended, read under the run's lock."""

    __slots__ = ("run", "open_steps", "last_activity", "now_ms")

    def __init__(self, run: dict[str, Any], open_steps: list[dict[str, Any]],
                 last_activity: Callable[[], str | None], now_ms: int) -> None:
        self.run = run  # the runs row (RUN_COLUMNS)
        self.open_steps = open_steps  # id, step_name, started_at of its steps not yet ended, oldest first
        self.last_activity = last_activity  # its latest step start or end or error time (one more query)
        self.now_ms = now_ms  # the moment the run's lock was taken: what is committed on the run came before


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
    """A database holding runs, run_steps and run_errors."""

    dialect: str = ""
    url: str = ""
    # Appended to the SELECT that starts ending a run: a row lock where writers do not serialise anyway.
    lock_run_row: str = ""

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

    def _retry_crash_write(self, write: Callable[[], Any]) -> Any:
        """A crash write, tried again where the backend can lose its connection (see PostgresStore)."""
        return write()

    def _hold_run(self, cur: Any, run_id: int) -> None:
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

    # -- writes: runs -------------------------------------------------------------------------------------
    def insert_run(
        self,
        *,
        pipeline: str,
        club_slug: str | None,
        started_at: str,
        hostname: str | None,
        pid: int | None,
        process_started_at: float | None,
        retention_cutoff: str | None,
        process_key: str | None = None,
        lock_key: str | None = None,
        run_id: int | None = None,
        started_by: str | None = None,
        beating: bool = True,
    ) -> int | None:
        """Delete runs older than the cutoff (if any) and insert a new `running` run, in one transaction.

        With a `lock_key` (`runtracker exec --lock`): None if a `running` run holds that key. The unique index
        `idx_runs_lock` (lock_key, over running runs) decides, so two starts on two hosts cannot both win;
        ON CONFLICT DO NOTHING turns the loser's insert into no row instead of an error. With a `run_id` (a run
        written again into a database file that replaced its own): that id, or None if it is taken.
        `beating=False`: no `heartbeat_at` yet (a run of the ingest API, whose client may never beat).
        """
        with self.transaction() as cur:
            if retention_cutoff is not None:
                self._delete_before(cur, retention_cutoff)
            cur.execute(
                self.sql(
                    "INSERT INTO runs (" + ("id, " if run_id is not None else "") + "club_slug, pipeline,"
                    " started_at, outcome, hostname, pid, process_started_at, heartbeat_at, process_key, lock_key,"
                    " started_by) VALUES (" + ("?, " if run_id is not None else "")
                    + "?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)"
                    + (" ON CONFLICT DO NOTHING" if lock_key is not None or run_id is not None else "")
                    + " RETURNING id"
                ),
                (*((run_id,) if run_id is not None else ()), _club(club_slug), pipeline, started_at, hostname, pid,
                 process_started_at, started_at if beating else None, process_key, lock_key, started_by),
            )
            row = cur.fetchone()
            return None if row is None else int(row[0])

    def _delete_before(self, cur: Any, cutoff: str) -> int:
        # Children first: a database adopted from the seed tool may have no ON DELETE CASCADE. With nothing
        # to delete, each statement is one probe of idx_runs_started_at.
        old = "SELECT id FROM runs WHERE started_at < ? AND outcome <> 'running'"
        cur.execute(self.sql(f"DELETE FROM run_errors WHERE run_id IN ({old})"), (cutoff,))
        cur.execute(self.sql(f"DELETE FROM run_steps WHERE run_id IN ({old})"), (cutoff,))
        cur.execute(self.sql("DELETE FROM runs WHERE started_at < ? AND outcome <> 'running'"), (cutoff,))
        return int(cur.rowcount or 0)

    def delete_runs_before(self, cutoff: str) -> int:
        with self.transaction() as cur:
            return self._delete_before(cur, cutoff)

    def end_run(self, run_id: int, build: Callable[[RunFacts], RunEnd], *, by_owner: bool = True,
                crash: bool = False) -> str:
        """End a run in one transaction; returns ENDED, OVERRODE_REAPER or ALREADY_ENDED.

        The run's row is locked first (SQLite: the write lock; PostgreSQL: the row), so whoever ends a run at
        the same moment — its owner, a crash hook in another thread, reapers on several hosts — queue, and the
        later ones see the first one's end. Then:

        - a run still `running` is ended (compare-and-set: zero runs are ended twice);
        - a run the reaper ended is ended again when `by_owner`: an owner that was alive after all (a host cut
          off from the database, a stopped process) knows better, and its account replaces the verdict, while
          `reaped_at`, `reap_reason` and the reaper's crash row stay as the record that it had been declared
          lost. An owner's own end is never replaced;
        - otherwise nothing is written.

        `build(facts)` makes the end from what the database holds (the run, its open steps); it runs inside
        the transaction. Steps are ended only while still open, so a step end that was acknowledged to its
        caller is never rewritten. `crash`: the write of a crash handler (see `crash_transaction`).
        """

        def write() -> str:
            with self.crash_transaction() if crash else self.transaction() as cur:
                facts = self._lock_run(cur, run_id)
                if facts is None:
                    return ALREADY_ENDED
                if facts.run["outcome"] == RUNNING:
                    result = ENDED
                elif by_owner and facts.run["ended_by"] == REAPER:
                    result = OVERRODE_REAPER
                else:
                    return ALREADY_ENDED
                end = build(facts)
                self._end_steps_and_add_errors(cur, end.steps, end.errors)
                reaped_at, reason = end.reaped or (None, None)
                cur.execute(
                    self.sql(self._FINISH_RUN),
                    (end.finished_at, end.duration_ms, end.outcome, end.summary_json, end.exit_code,
                     REAPER if end.reaped else OWNER, reaped_at, reason, end.output_tail, run_id, run_id),
                )
                return result

        return self._retry_crash_write(write) if crash else write()

    # Totals are summed from the steps. Each count is capped at 2^31 - 1 on the way in, so that a row another
    # writer left with an absurd count cannot make the sum overflow and the run impossible to end.
    _CAPPED = "SUM(CASE WHEN {c} > 2147483647 THEN 2147483647 ELSE {c} END)"
    _FINISH_RUN = (
        "UPDATE runs SET finished_at = ?, duration_ms = ?, outcome = ?, summary_json = ?, exit_code = ?,"
        " ended_by = ?, reaped_at = COALESCE(?, reaped_at), reap_reason = COALESCE(?, reap_reason),"
        " output_tail = COALESCE(?, output_tail),"
        " total_created = t.c, total_updated = t.u, total_skipped = t.s, total_failed = t.f"
        f" FROM (SELECT COALESCE({_CAPPED.format(c='created_count')}, 0) AS c,"
        f" COALESCE({_CAPPED.format(c='updated_count')}, 0) AS u,"
        f" COALESCE({_CAPPED.format(c='skipped_count')}, 0) AS s,"
        f" COALESCE({_CAPPED.format(c='failed_count')}, 0) AS f"
        " FROM run_steps WHERE run_id = ?) AS t"
        " WHERE runs.id = ?"
    )

    _LAST_ACTIVITY = (
        "SELECT MAX(t) FROM (SELECT MAX(started_at) AS t FROM run_steps WHERE run_id = ?"
        " UNION ALL SELECT MAX(finished_at) FROM run_steps WHERE run_id = ?"
        " UNION ALL SELECT MAX(created_at) FROM run_errors WHERE run_id = ?) AS activity"
    )

    def _lock_run(self, cur: Any, run_id: int) -> RunFacts | None:
        """Inside an end's transaction: lock the run and read what its end is built from; None if it is gone."""
        cur.execute(self.sql(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?" + self.lock_run_row), (run_id,))
        rows = _dicts(cur)
        if not rows:
            return None
        cur.execute(self.sql("SELECT id, step_name, started_at FROM run_steps"
                             " WHERE run_id = ? AND finished_at IS NULL ORDER BY id"), (run_id,))
        return RunFacts(rows[0], _dicts(cur), lambda: self._last_activity(cur, run_id), now_ms())

    def _end_steps_and_add_errors(self, cur: Any, steps: Sequence[StepEnd], errors: Sequence[ErrorRow]) -> None:
        for step in steps:
            self._finish_step(cur, step, only_open=True)
        if errors:
            self._insert_errors(cur, errors)

    def _last_activity(self, cur: Any, run_id: int) -> str | None:
        cur.execute(self.sql(self._LAST_ACTIVITY), (run_id, run_id, run_id))
        value = cur.fetchone()[0]
        return None if value is None else str(value)

    def record_child_view(self, run_id: int,
                          build: Callable[[RunFacts], tuple[Sequence[StepEnd], Sequence[ErrorRow], str | None]],
                          *, crash: bool = False) -> bool:
        """A Python child attached to a `runtracker exec` run ends its part, without ending the run (the wrapper
        does): `build(facts)` gives the ends of its open steps, its error rows, and the run's new summary_json
        (the child's view folded in). False if the run is no longer running."""

        def write() -> bool:
            with self.crash_transaction() if crash else self.transaction() as cur:
                facts = self._lock_run(cur, run_id)
                if facts is None or facts.run["outcome"] != RUNNING:
                    return False
                steps, errors, summary_json = build(facts)
                self._end_steps_and_add_errors(cur, steps, errors)
                cur.execute(self.sql("UPDATE runs SET summary_json = ? WHERE id = ?"), (summary_json, run_id))
                return True

        return bool(self._retry_crash_write(write)) if crash else write()

    def touch_heartbeat(self, run_ids: Sequence[int], at: str) -> int:
        """A heartbeat for these runs, those still `running`; how many they were."""
        if not run_ids:
            return 0
        marks = ", ".join("?" * len(run_ids))
        with self.transaction() as cur:
            cur.execute(
                self.sql(f"UPDATE runs SET heartbeat_at = ? WHERE outcome = 'running' AND id IN ({marks})"),
                (at, *run_ids),
            )
            return int(cur.rowcount or 0)

    # -- writes: steps and errors ---------------------------------------------------------------------------
    _INSERT_STEP = (
        "INSERT INTO run_steps (run_id, club_slug, step_name, started_at) SELECT ?, ?, ?, ?"
        " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ? AND (outcome = 'running' OR ended_by = 'reaper'))"
        " RETURNING id"
    )

    def insert_step(self, *, run_id: int, club_slug: str | None, step_name: str, started_at: str,
                    step_id: int | None = None) -> int | None:
        """Add a step to a run that is still `running`; None if the run has ended, so that no step is ever left
        open in an ended run. A run the reaper ended still takes its owner's steps: an owner that was alive
        after all goes on, and its own end replaces the reaper's (see `end_run`). With a `step_id` (a step
        written again into a database file that replaced its own): that id, or None if it is taken."""
        sql = self._INSERT_STEP
        params: tuple[Any, ...] = (run_id, _club(club_slug), step_name, started_at, run_id)
        if step_id is not None:
            sql = sql.replace("(run_id,", "(id, run_id,").replace("SELECT ?,", "SELECT ?, ?,").replace(
                " RETURNING", " ON CONFLICT DO NOTHING RETURNING")
            params = (step_id, *params)
        with self.transaction() as cur:
            self._hold_run(cur, run_id)
            cur.execute(self.sql(sql), params)
            row = cur.fetchone()
            return None if row is None else int(row[0])

    _FINISH_STEP = (
        "UPDATE run_steps SET finished_at = ?, duration_ms = ?, outcome = ?, created_count = ?,"
        " updated_count = ?, skipped_count = ?, failed_count = ?, detail_json = ? WHERE id = ?"
    )

    def _finish_step(self, cur: Any, end: StepEnd, *, only_open: bool = False) -> bool:
        cur.execute(
            self.sql(self._FINISH_STEP + (" AND finished_at IS NULL" if only_open else self._OPEN_OR_REAPED)),
            (end.finished_at, end.duration_ms, end.outcome, end.created, end.updated,
             end.skipped, end.failed, end.detail_json, end.step_id),
        )
        return bool(cur.rowcount)

    # The owner's own end of a step: while the step is open, or when the reaper ended its run (and so the step)
    # while the owner was alive after all; never over an end the owner's own process wrote.
    _OPEN_OR_REAPED = (
        " AND (finished_at IS NULL OR EXISTS (SELECT 1 FROM runs WHERE runs.id = run_steps.run_id"
        " AND runs.ended_by = 'reaper'))"
    )

    def end_step(self, run_id: int, end: StepEnd) -> bool:
        """The owner ends a step of its run; False if it was already ended (by a crash handler, or it does not
        exist). An end of the run in progress is waited for, so that its outcome (the reaper's?) is seen."""
        with self.transaction() as cur:
            self._hold_run(cur, run_id)
            return self._finish_step(cur, end)

    _INSERT_ERRORS = (
        "INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, member_identifier, error_message,"
        " error_stack, created_at) VALUES "
    )
    _ERROR_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)"
    # Rows per INSERT statement. SQLite runs an executemany as one statement per row; one multi-row INSERT per
    # 100 rows is 1.7x as fast for 10,000 rows (bench/bulk.py). 100 rows x 8 = 800 parameters, under the
    # 999 that the oldest SQLite builds allow.
    ERRORS_PER_INSERT = 100

    def _insert_errors(self, cur: Any, rows: Sequence[ErrorRow]) -> None:
        for start in range(0, len(rows), self.ERRORS_PER_INSERT):
            chunk = rows[start : start + self.ERRORS_PER_INSERT]
            sql = self._INSERT_ERRORS + ", ".join([self._ERROR_VALUES] * len(chunk))
            cur.execute(self.sql(sql), [value for row in chunk for value in row])

    def insert_errors(self, rows: Sequence[ErrorRow]) -> None:
        if rows:
            with self.transaction() as cur:
                self._insert_errors(cur, rows)

    # -- runtracker exec -------------------------------------------------------------------------------------
    def lock_holder(self, lock_key: str) -> dict[str, Any] | None:
        """The `running` run holding an exec lock, if any."""
        rows = self.read(f"SELECT {RUN_COLUMNS} FROM runs WHERE lock_key = ? AND outcome = 'running'", (lock_key,))
        return rows[0] if rows else None

    def get_output_tail(self, run_id: int) -> str | None:
        rows = self.read("SELECT output_tail FROM runs WHERE id = ?", (run_id,))
        return rows[0]["output_tail"] if rows else None

    # -- runtracker migrate: copying a history into this database -------------------------------------------
    def lock_for_copy(self, cur: Any) -> None:
        """Taken first in a copy's transaction, so that no writer of this database (a pipeline already pointed
        at it) inserts rows, or takes ids, between the emptiness check and the commit."""
        return None

    def reset_ids(self, cur: Any, tables: Sequence[str]) -> None:
        """After inserting explicit ids: make the next generated id come after them (SQLite's AUTOINCREMENT
        bookkeeping follows explicit ids on its own)."""
        return None

    # -- reads ---------------------------------------------------------------------------------------------
    def get_run(self, run_id: int) -> dict[str, Any] | None:
        rows = self.read(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def list_runs(
        self, *, pipeline: str | None = None, outcome: str | None = None, limit: int = 50,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before_id` pages backwards through history."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("pipeline", pipeline), ("outcome", outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.read(f"SELECT {RUN_COLUMNS} FROM runs{clause} ORDER BY id DESC LIMIT ?", (*params, limit))

    def running_runs(self) -> list[dict[str, Any]]:
        return self.read(f"SELECT {RUN_COLUMNS} FROM runs WHERE outcome = 'running' ORDER BY id")

    def list_steps(self, run_id: int) -> list[dict[str, Any]]:
        return self.read(f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ? ORDER BY id", (run_id,))

    def list_errors(self, run_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        return self.read(
            f"SELECT {ERROR_COLUMNS} FROM run_errors WHERE run_id = ? ORDER BY id LIMIT ?", (run_id, limit)
        )

    def count_errors(self, run_id: int) -> int:
        return int(self.read("SELECT COUNT(*) AS n FROM run_errors WHERE run_id = ?", (run_id,))[0]["n"])


def _club(club_slug: str | None) -> str:
    """club_slug is NOT NULL, with the original's default: None means that default."""
    return DEFAULT_CLUB_SLUG if club_slug is None else club_slug


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
