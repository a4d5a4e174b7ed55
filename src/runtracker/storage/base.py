"""The storage seam: one SQL store holds the queries; each backend supplies a connection and its dialect.

Every public method is one transaction that has committed when it returns (durable against a process crash).
Queries use `?` placeholders; a backend with another paramstyle rewrites them once (`_sql`).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..config import now_iso
from ..outcomes import RUNNING
from . import schema

log = logging.getLogger("runtracker")

RUN_COLUMNS = (
    "id, club_slug, pipeline, started_at, finished_at, duration_ms, outcome, total_created, total_updated,"
    " total_skipped, total_failed, summary_json, hostname, pid, process_started_at, heartbeat_at, exit_code,"
    " process_key, reaped_at, reap_reason"
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


@dataclass(frozen=True)
class RunEnd:
    """How one run ends: applied only while the run is still `running` (compare-and-set)."""

    run_id: int
    outcome: str
    finished_at: str
    duration_ms: int
    summary_json: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class StepEnd:
    step_id: int
    outcome: str
    finished_at: str
    duration_ms: int
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    detail_json: str | None = None


class Store(ABC):
    """A database holding runs, run_steps and run_errors."""

    dialect: str = ""
    url: str = ""
    # Appended to the SELECT that starts ending a run: a row lock where writers do not serialise anyway.
    lock_run_row: str = ""

    def __init__(self) -> None:
        # One connection per store and process, shared by every tracker and thread; the lock serialises
        # transactions on it. It is re-entrant because a signal handler may interrupt the main thread while
        # it holds the lock: see `crash_transaction`.
        self._lock = threading.RLock()
        self._sql_cache: dict[str, str] = {}

    # -- backend hooks ---------------------------------------------------------------------------------
    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a cursor inside a write transaction that commits on success and rolls back on error."""

    @abstractmethod
    @contextmanager
    def crash_transaction(self) -> Iterator[Any]:
        """Like `transaction`, for crash handlers that may have interrupted one of our own transactions."""

    @abstractmethod
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts."""

    @abstractmethod
    def close(self) -> None: ...

    def _sql(self, sql: str) -> str:
        return sql

    def _insert_returning_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        cur.execute(self._sql(sql + " RETURNING id"), params)
        return int(cur.fetchone()[0])

    # -- schema --------------------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema to the latest version; returns the version the database had before."""
        with self.transaction() as cur:
            self._lock_for_migration(cur)
            cur.execute(schema.BOOKKEEPING)
            cur.execute("SELECT MAX(version) FROM schema_migrations")
            current = cur.fetchone()[0] or 0
            for migration in schema.MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in schema.statements(migration, self.dialect):
                    self._apply(cur, statement)
                cur.execute(
                    self._sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
                    (migration.version, migration.name, now_iso()),
                )
        return int(current)

    def _lock_for_migration(self, cur: Any) -> None:
        """Make concurrent migrations wait for each other (SQLite's BEGIN IMMEDIATE already does)."""
        return None

    def _apply(self, cur: Any, statement: str) -> None:
        cur.execute(statement)

    def schema_version(self) -> int:
        rows = self.read("SELECT MAX(version) AS v FROM schema_migrations")
        return int(rows[0]["v"] or 0)

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
    ) -> int | None:
        """Delete runs older than the cutoff (if any) and insert a new `running` run, in one transaction.

        With a `lock_key` (`runtracker exec --lock`): None if a `running` run holds that key. The unique index
        `idx_runs_lock` (lock_key, over running runs) decides, so two starts on two hosts cannot both win;
        ON CONFLICT DO NOTHING turns the loser's insert into no row instead of an error.
        """
        with self.transaction() as cur:
            if retention_cutoff is not None:
                self._delete_before(cur, retention_cutoff)
            cur.execute(
                self._sql(
                    "INSERT INTO runs (club_slug, pipeline, started_at, outcome, hostname, pid, process_started_at,"
                    " heartbeat_at, process_key, lock_key) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)"
                    + (" ON CONFLICT DO NOTHING" if lock_key is not None else "") + " RETURNING id"
                ),
                (club_slug, pipeline, started_at, hostname, pid, process_started_at, started_at, process_key,
                 lock_key),
            )
            row = cur.fetchone()
            return None if row is None else int(row[0])

    def _delete_before(self, cur: Any, cutoff: str) -> int:
        # Children first: a database adopted from the seed tool may have no ON DELETE CASCADE. With nothing
        # to delete, each statement is one probe of idx_runs_started_at.
        old = "SELECT id FROM runs WHERE started_at < ? AND outcome <> 'running'"
        cur.execute(self._sql(f"DELETE FROM run_errors WHERE run_id IN ({old})"), (cutoff,))
        cur.execute(self._sql(f"DELETE FROM run_steps WHERE run_id IN ({old})"), (cutoff,))
        cur.execute(self._sql("DELETE FROM runs WHERE started_at < ? AND outcome <> 'running'"), (cutoff,))
        return int(cur.rowcount or 0)

    def delete_runs_before(self, cutoff: str) -> int:
        with self.transaction() as cur:
            return self._delete_before(cur, cutoff)

    _FINISH_RUN = (
        "UPDATE runs SET finished_at = ?, duration_ms = ?, outcome = ?, summary_json = ?, exit_code = ?,"
        " total_created = t.c, total_updated = t.u, total_skipped = t.s, total_failed = t.f"
        " FROM (SELECT COALESCE(SUM(created_count), 0) AS c, COALESCE(SUM(updated_count), 0) AS u,"
        " COALESCE(SUM(skipped_count), 0) AS s, COALESCE(SUM(failed_count), 0) AS f"
        " FROM run_steps WHERE run_id = ?) AS t"
        " WHERE runs.id = ? AND runs.outcome = 'running'"
    )

    _FINISH_REAPED = _FINISH_RUN.replace("runs.outcome = 'running'", "runs.reaped_at IS NOT NULL")

    def _finish_run(self, cur: Any, end: RunEnd, *, reaped: bool = False) -> bool:
        # Compare-and-set: only a run still `running` changes, so a crash handler, a reaper and the owner's
        # own end_run racing each other never double-act; zero rows changed means someone else won.
        # `reaped`: the owner overrides a run the reaper had declared lost (see `end_reaped_run`).
        cur.execute(
            self._sql(self._FINISH_REAPED if reaped else self._FINISH_RUN),
            (end.finished_at, end.duration_ms, end.outcome, end.summary_json, end.exit_code, end.run_id,
             end.run_id),
        )
        return bool(cur.rowcount)

    def end_run(
        self,
        end: RunEnd,
        open_steps: Sequence[StepEnd] = (),
        errors: Sequence[ErrorRow] = (),
    ) -> bool:
        """End a run (with its still-open steps and any last error rows). False if it was no longer running."""
        with self.transaction() as cur:
            return self._end_run(cur, end, open_steps, errors)

    def _end_run(self, cur: Any, end: RunEnd, open_steps: Sequence[StepEnd], errors: Sequence[ErrorRow]) -> bool:
        if self._add_to_running_run(cur, end.run_id, open_steps, errors) is None:
            return False
        return self._finish_run(cur, end)

    def _add_to_running_run(self, cur: Any, run_id: int, open_steps: Sequence[StepEnd], errors: Sequence[ErrorRow],
                            columns: str = "outcome", *, reaped: bool = False) -> tuple[Any, ...] | None:
        """Lock the run's row; if it is still running, end the given steps and add the errors.

        `reaped`: instead, only if the reaper has ended it (the owner's own account then wins).
        Returns the selected columns (outcome first), or None when the run is gone or not in that state."""
        cur.execute(self._sql(f"SELECT {columns}, reaped_at FROM runs WHERE id = ?" + self.lock_run_row),
                    (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        running = row[0] == RUNNING
        if not ((not running and row[-1] is not None) if reaped else running):
            return None
        for step in open_steps:
            self._finish_step(cur, step)
        if errors:
            self._insert_errors(cur, errors)
        return tuple(row[:-1])

    def end_runs_crashed(self, ends: Sequence[tuple[RunEnd, Sequence[StepEnd], Sequence[ErrorRow]]]) -> list[int]:
        """Crash path: end several runs in one transaction; returns the ids that were still running (or that
        the reaper had declared lost: the owner's own account wins, see `end_reaped_run`)."""
        done = []
        with self.crash_transaction() as cur:
            for end, steps, errors in ends:
                if self._end_own_run(cur, end, steps, errors):
                    done.append(end.run_id)
        return done

    # -- the reaper -------------------------------------------------------------------------------------------
    _LAST_ACTIVITY = (
        "SELECT MAX(t) FROM (SELECT MAX(started_at) AS t FROM run_steps WHERE run_id = ?"
        " UNION ALL SELECT MAX(finished_at) FROM run_steps WHERE run_id = ?"
        " UNION ALL SELECT MAX(created_at) FROM run_errors WHERE run_id = ?) AS activity"
    )

    def reap_run(self, run_id: int, reaped_at: str, reason: str,
                 build: Callable[[dict[str, Any]], tuple[RunEnd, Sequence[StepEnd], Sequence[ErrorRow]]]) -> bool:
        """End a run whose owner is gone, if it is still `running`. False if someone else ended it first.

        In one transaction: claim the row (compare-and-set on `running`, under the row lock where writers do
        not serialise anyway), read what the end is built from — the run, its open steps and its latest step
        or error time — call `build(facts)` for the end, write it, and mark the run reaped. An owner that is
        alive after all may still end a step meanwhile (end_step does not take the run's row lock): steps are
        ended only while still open, so the owner's own end of a step is never overwritten.
        """
        with self.transaction() as cur:
            cur.execute(self._sql(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?" + self.lock_run_row), (run_id,))
            runs = _dicts(cur)
            if not runs or runs[0]["outcome"] != RUNNING:
                return False
            cur.execute(
                self._sql(f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ? AND finished_at IS NULL ORDER BY id"),
                (run_id,),
            )
            open_steps = _dicts(cur)
            cur.execute(self._sql(self._LAST_ACTIVITY), (run_id, run_id, run_id))
            activity = cur.fetchone()[0]
            end, steps, errors = build({"run": runs[0], "open_steps": open_steps, "last_activity": activity})
            for step in steps:
                self._finish_step(cur, step, only_open=True)
            if errors:
                self._insert_errors(cur, errors)
            if not self._finish_run(cur, end):
                return False
            cur.execute(self._sql("UPDATE runs SET reaped_at = ?, reap_reason = ? WHERE id = ?"),
                        (reaped_at, reason, run_id))
            return True

    def end_reaped_run(self, end: RunEnd, open_steps: Sequence[StepEnd] = (),
                       errors: Sequence[ErrorRow] = ()) -> bool:
        """The owner ends a run the reaper had declared lost (a partitioned host, a stalled process): the
        owner's outcome wins. `reaped_at` / `reap_reason` and the reaper's crash row stay, saying it had been
        declared lost. False if the run was not reaped (still running, or ended otherwise)."""
        with self.transaction() as cur:
            return self._end_reaped_run(cur, end, open_steps, errors)

    def _end_reaped_run(self, cur: Any, end: RunEnd, open_steps: Sequence[StepEnd],
                        errors: Sequence[ErrorRow]) -> bool:
        if self._add_to_running_run(cur, end.run_id, open_steps, errors, reaped=True) is None:
            return False
        return self._finish_run(cur, end, reaped=True)

    def _end_own_run(self, cur: Any, end: RunEnd, open_steps: Sequence[StepEnd], errors: Sequence[ErrorRow]) -> bool:
        """The owner ends its run: still running, or declared lost by the reaper (the owner's account wins)."""
        return self._end_run(cur, end, open_steps, errors) or self._end_reaped_run(cur, end, open_steps, errors)

    def touch_heartbeat(self, run_ids: Sequence[int], at: str) -> None:
        if not run_ids:
            return
        marks = ", ".join("?" * len(run_ids))
        with self.transaction() as cur:
            cur.execute(
                self._sql(f"UPDATE runs SET heartbeat_at = ? WHERE outcome = 'running' AND id IN ({marks})"),
                (at, *run_ids),
            )

    # -- writes: steps and errors ---------------------------------------------------------------------------
    def insert_step(self, *, run_id: int, club_slug: str | None, step_name: str, started_at: str) -> int:
        with self.transaction() as cur:
            return self._insert_returning_id(
                cur,
                "INSERT INTO run_steps (run_id, club_slug, step_name, started_at) VALUES (?, ?, ?, ?)",
                (run_id, club_slug, step_name, started_at),
            )

    def _finish_step(self, cur: Any, end: StepEnd, *, only_open: bool = False) -> bool:
        cur.execute(
            self._sql(
                "UPDATE run_steps SET finished_at = ?, duration_ms = ?, outcome = ?, created_count = ?,"
                " updated_count = ?, skipped_count = ?, failed_count = ?, detail_json = ? WHERE id = ?"
                + (" AND finished_at IS NULL" if only_open else "")
            ),
            (end.finished_at, end.duration_ms, end.outcome, end.created, end.updated, end.skipped, end.failed,
             end.detail_json, end.step_id),
        )
        return bool(cur.rowcount)

    def end_step(self, end: StepEnd) -> bool:
        with self.transaction() as cur:
            return self._finish_step(cur, end)

    _INSERT_ERRORS = (
        "INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, member_identifier, error_message,"
        " error_stack, created_at) VALUES "
    )
    _ERROR_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)"
    _INSERT_ERROR = _INSERT_ERRORS + _ERROR_VALUES
    # Rows per INSERT statement. SQLite runs an executemany as one statement per row; one multi-row INSERT per
    # 100 rows is 1.7x as fast for 10,000 rows (bench/bulk.py). 100 rows x 8 = 800 parameters, under the
    # 999 that the oldest SQLite builds allow.
    ERRORS_PER_INSERT = 100

    def _insert_errors(self, cur: Any, rows: Sequence[ErrorRow]) -> None:
        for start in range(0, len(rows), self.ERRORS_PER_INSERT):
            chunk = rows[start : start + self.ERRORS_PER_INSERT]
            sql = self._INSERT_ERRORS + ", ".join([self._ERROR_VALUES] * len(chunk))
            cur.execute(self._sql(sql), [value for row in chunk for value in row])

    def insert_errors(self, rows: Sequence[ErrorRow]) -> None:
        if rows:
            with self.transaction() as cur:
                self._insert_errors(cur, rows)

    # -- runtracker exec -------------------------------------------------------------------------------------
    def lock_holder(self, lock_key: str) -> dict[str, Any] | None:
        """The `running` run holding an exec lock, if any."""
        rows = self.read(f"SELECT {RUN_COLUMNS} FROM runs WHERE lock_key = ? AND outcome = 'running'", (lock_key,))
        return rows[0] if rows else None

    def end_exec_run(self, end: RunEnd, open_steps: Sequence[StepEnd], errors: Sequence[ErrorRow],
                     output_tail: str | None) -> bool:
        """End an exec run and store its output tail, in one transaction. As for the owner's end_run, a run
        the reaper had declared lost gets this end after all; the tail is stored either way."""
        with self.transaction() as cur:
            cur.execute(self._sql("UPDATE runs SET output_tail = ? WHERE id = ?"), (output_tail, end.run_id))
            return self._end_own_run(cur, end, open_steps, errors)

    def get_output_tail(self, run_id: int) -> str | None:
        rows = self.read("SELECT output_tail FROM runs WHERE id = ?", (run_id,))
        return rows[0]["output_tail"] if rows else None

    def record_child_view(self, run_id: int, open_steps: Sequence[StepEnd], errors: Sequence[ErrorRow],
                          merge: Callable[[str | None], str | None], *, crash: bool = False) -> bool:
        """A Python child attached to an exec run ends its part: its steps end, its errors are added, and
        `merge(summary_json)` folds its view into the summary. The run stays `running` (the wrapper ends it).
        False if the run is no longer running."""
        with (self.crash_transaction() if crash else self.transaction()) as cur:
            row = self._add_to_running_run(cur, run_id, open_steps, errors, "outcome, summary_json")
            if row is None:
                return False
            cur.execute(self._sql("UPDATE runs SET summary_json = ? WHERE id = ?"), (merge(row[1]), run_id))
            return True

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


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
