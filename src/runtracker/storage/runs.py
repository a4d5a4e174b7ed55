"""A run's records: the writes its lifecycle makes (open, steps, errors, heartbeats, its end), the reads the
reaper and `runtracker exec` need, retention, and clearing errors (the dashboard's one write).

Every method is one transaction of the store (see `Store.transaction`): called inside `with store.transaction():`
it joins that one.

Ending a run is one method, `Runs.end_run`, whoever ends it: the run's own process (its `end_run`, a crash hook,
the exit hook, `runtracker exec`) or the reaper. See its docstring for the rules it applies in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..base.clock import now_ms
from ..base.outcomes import CRASH_STEP, DEFAULT_CLUB_SLUG, RUNNING
from ..base.records import Record
from .base import Store
from .errorfilter import ErrorFilter, like, like_pattern

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

RUN_COLUMNS = (
    "id, club_slug, pipeline, started_at, finished_at, duration_ms, outcome, total_created, total_updated,"
    " total_skipped, total_failed, summary_json, hostname, pid, process_started_at, heartbeat_at, exit_code,"
    " process_key, reaped_at, reap_reason, ended_by, started_by"
)
# A run as list pages show it (no output tail, no summary: those are for the run's own page).
RUN_LIST_COLUMNS = (
    "id, pipeline, started_at, finished_at, duration_ms, outcome, total_created, total_updated, total_skipped,"
    " total_failed, started_by, ended_by, reaped_at"
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

# What `end_run` did.
ENDED = "ended"
OVERRODE_REAPER = "overrode_reaper"  # the owner replaced the reaper's verdict with its own account
ALREADY_ENDED = "already_ended"  # nothing written: someone else ended it first (or it does not exist)

# How many rows one DELETE of "clear errors" removes: each batch is a transaction of its own, so pipelines
# writing meanwhile wait for one batch, never for the whole clearing.
CLEAR_BATCH = 5000
CLEAR_RUNS = 500  # runs whose errors one batch deletes, when clearing a pipeline's errors


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


def history_query(pipeline: str, limit: int, before: tuple[str, int] | None = None) -> tuple[str, list[Any]]:
    """A pipeline's runs newest first, started before the run `before` = (started_at, id): a walk of
    idx_runs_pipeline_started (the dashboard's history pages; clearing a pipeline's errors run by run)."""
    sql = f"SELECT {RUN_LIST_COLUMNS} FROM runs WHERE pipeline = ?"
    params: list[Any] = [pipeline]
    if before is not None:
        sql += " AND started_at <= ? AND (started_at < ? OR id < ?)"
        params += [before[0], before[0], before[1]]
    return sql + f" ORDER BY started_at DESC, id DESC LIMIT {int(limit)}", params


class Runs:
    """Runs, their steps and their errors on one store."""

    __slots__ = ("store",)

    def __init__(self, store: Store) -> None:
        self.store = store

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
        start_key: str | None = None,
    ) -> int | None:
        """Delete runs older than the cutoff (if any) and insert a new `running` run, in one transaction.

        With a `lock_key` (`runtracker exec --lock`): None if a `running` run holds that key. The unique index
        `idx_runs_lock` (lock_key, over running runs) decides, so two starts on two hosts cannot both win;
        ON CONFLICT DO NOTHING turns the loser's insert into no row instead of an error. With a `run_id` (a run
        written again into a database file that replaced its own): that id, or None if it is taken.
        `beating=False`: no `heartbeat_at` yet (a run of the ingest API, whose client may never beat).
        `start_key`: the writer's own key for this start; if a run with that key exists (an earlier try committed
        but its answer was lost with the connection), its id is returned and nothing is written.
        """
        with self.store.transaction() as cur:
            if start_key is not None:
                cur.execute(self.store.sql("SELECT id FROM runs WHERE start_key = ?"), (start_key,))
                found = cur.fetchone()
                if found is not None:
                    return int(found[0])
            if retention_cutoff is not None:
                self._delete_before(cur, retention_cutoff)
            cur.execute(
                self.store.sql(
                    "INSERT INTO runs (" + ("id, " if run_id is not None else "") + "club_slug, pipeline,"
                    " started_at, outcome, hostname, pid, process_started_at, heartbeat_at, process_key, lock_key,"
                    " started_by, start_key) VALUES (" + ("?, " if run_id is not None else "")
                    + "?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)"
                    + (" ON CONFLICT DO NOTHING" if lock_key is not None or run_id is not None else "")
                    + " RETURNING id"
                ),
                (*((run_id,) if run_id is not None else ()), _club(club_slug), pipeline, started_at, hostname, pid,
                 process_started_at, started_at if beating else None, process_key, lock_key, started_by, start_key),
            )
            row = cur.fetchone()
            return None if row is None else int(row[0])

    def _delete_before(self, cur: Any, cutoff: str) -> int:
        # Children first: a database adopted from the seed tool may have no ON DELETE CASCADE. With nothing
        # to delete, each statement is one probe of idx_runs_started_at.
        old = "SELECT id FROM runs WHERE started_at < ? AND outcome <> 'running'"
        cur.execute(self.store.sql(f"DELETE FROM run_errors WHERE run_id IN ({old})"), (cutoff,))
        cur.execute(self.store.sql(f"DELETE FROM run_steps WHERE run_id IN ({old})"), (cutoff,))
        cur.execute(self.store.sql("DELETE FROM runs WHERE started_at < ? AND outcome <> 'running'"), (cutoff,))
        return int(cur.rowcount or 0)

    def delete_runs_before(self, cutoff: str) -> int:
        with self.store.transaction() as cur:
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
            with self.store.crash_transaction() if crash else self.store.transaction() as cur:
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
                    self.store.sql(self._FINISH_RUN),
                    (end.finished_at, end.duration_ms, end.outcome, end.summary_json, end.exit_code,
                     REAPER if end.reaped else OWNER, reaped_at, reason, end.output_tail, run_id, run_id),
                )
                return result

        return self.store.retry_crash_write(write) if crash else write()

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
        cur.execute(self.store.sql(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?" + self.store.lock_run_row), (run_id,))
        rows = _dicts(cur)
        if not rows:
            return None
        cur.execute(self.store.sql("SELECT id, step_name, started_at FROM run_steps"
                             " WHERE run_id = ? AND finished_at IS NULL ORDER BY id"), (run_id,))
        return RunFacts(rows[0], _dicts(cur), lambda: self._last_activity(cur, run_id), now_ms())

    def _end_steps_and_add_errors(self, cur: Any, steps: Sequence[StepEnd], errors: Sequence[ErrorRow]) -> None:
        for step in steps:
            self._finish_step(cur, step, only_open=True)
        if errors:
            self._insert_errors(cur, errors)

    def _last_activity(self, cur: Any, run_id: int) -> str | None:
        cur.execute(self.store.sql(self._LAST_ACTIVITY), (run_id, run_id, run_id))
        value = cur.fetchone()[0]
        return None if value is None else str(value)

    def record_child_view(self, run_id: int,
                          build: Callable[[RunFacts], tuple[Sequence[StepEnd], Sequence[ErrorRow], str | None]],
                          *, crash: bool = False) -> bool:
        """A Python child attached to a `runtracker exec` run ends its part, without ending the run (the wrapper
        does): `build(facts)` gives the ends of its open steps, its error rows, and the run's new summary_json
        (the child's view folded in). False if the run is no longer running."""

        def write() -> bool:
            with self.store.crash_transaction() if crash else self.store.transaction() as cur:
                facts = self._lock_run(cur, run_id)
                if facts is None or facts.run["outcome"] != RUNNING:
                    return False
                steps, errors, summary_json = build(facts)
                self._end_steps_and_add_errors(cur, steps, errors)
                cur.execute(self.store.sql("UPDATE runs SET summary_json = ? WHERE id = ?"), (summary_json, run_id))
                return True

        return bool(self.store.retry_crash_write(write)) if crash else write()

    def touch_heartbeat(self, run_ids: Sequence[int], at: str) -> int:
        """A heartbeat for these runs, those still `running`; how many they were."""
        if not run_ids:
            return 0
        marks = ", ".join("?" * len(run_ids))
        with self.store.transaction() as cur:
            cur.execute(
                self.store.sql(f"UPDATE runs SET heartbeat_at = ? WHERE outcome = 'running' AND id IN ({marks})"),
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
        with self.store.transaction() as cur:
            self.store.hold_run(cur, run_id)
            cur.execute(self.store.sql(sql), params)
            row = cur.fetchone()
            return None if row is None else int(row[0])

    _FINISH_STEP = (
        "UPDATE run_steps SET finished_at = ?, duration_ms = ?, outcome = ?, created_count = ?,"
        " updated_count = ?, skipped_count = ?, failed_count = ?, detail_json = ? WHERE id = ?"
    )

    def _finish_step(self, cur: Any, end: StepEnd, *, only_open: bool = False) -> bool:
        cur.execute(
            self.store.sql(self._FINISH_STEP + (" AND finished_at IS NULL" if only_open else self._OPEN_OR_REAPED)),
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
        with self.store.transaction() as cur:
            self.store.hold_run(cur, run_id)
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
            cur.execute(self.store.sql(sql), [value for row in chunk for value in row])

    def insert_errors(self, rows: Sequence[ErrorRow]) -> None:
        if rows:
            with self.store.transaction() as cur:
                self._insert_errors(cur, rows)

    # -- runtracker exec -------------------------------------------------------------------------------------
    def lock_holder(self, lock_key: str) -> dict[str, Any] | None:
        """The `running` run holding an exec lock, if any."""
        rows = self.store.read(f"SELECT {RUN_COLUMNS} FROM runs WHERE lock_key = ? AND outcome = 'running'",
                               (lock_key,))
        return rows[0] if rows else None

    def get_output_tail(self, run_id: int) -> str | None:
        rows = self.store.read("SELECT output_tail FROM runs WHERE id = ?", (run_id,))
        return rows[0]["output_tail"] if rows else None

    # -- the dashboard's one write ------------------------------------------------------------------------------
    def clear_errors(self, flt: ErrorFilter) -> int:
        """Delete the errors matching `flt`, crash rows excepted (they are the record of how a run died), in
        batches, each its own transaction (pipelines writing meanwhile wait for one batch, never for all of
        it). Each batch starts where the one before stopped, so the whole clearing reads the table at most
        once: a pipeline's errors run by run (its runs by their index, CLEAR_RUNS at a time), others by id
        (CLEAR_BATCH rows at a time). Returns how many were deleted."""
        conditions = ["step_name <> ?"]
        params: list[Any] = [CRASH_STEP]
        for column, value in (("step_name", flt.step), ("member_identifier", flt.member)):
            if value:
                conditions.append(f"{column} = ?")
                params.append(value)
        if flt.since:
            conditions.append("created_at >= ?")
            params.append(flt.since)
        if flt.until:
            conditions.append("created_at < ?")
            params.append(flt.until)
        if flt.text:
            conditions.append(like(self.store.dialect, "error_message"))
            params.append(like_pattern(flt.text))
        where = " AND ".join(conditions)
        deleted = 0
        if flt.pipeline:
            before: tuple[str, int] | None = None
            while True:
                runs = self.store.read(*history_query(flt.pipeline, CLEAR_RUNS, before))
                if not runs:
                    return deleted
                marks = ", ".join("?" * len(runs))
                with self.store.transaction() as cur:
                    cur.execute(self.store.sql(f"DELETE FROM run_errors WHERE run_id IN ({marks}) AND {where}"),
                                [run["id"] for run in runs] + params)
                    deleted += int(cur.rowcount or 0)
                before = (runs[-1]["started_at"], runs[-1]["id"])
        after = 0
        sql = self.store.sql(f"DELETE FROM run_errors WHERE id IN (SELECT id FROM run_errors WHERE id > ? AND {where}"
                             f" ORDER BY id LIMIT {CLEAR_BATCH}) RETURNING id")
        while True:
            with self.store.transaction() as cur:
                cur.execute(sql, [after, *params])
                ids = [int(row[0]) for row in cur.fetchall()]
            deleted += len(ids)
            if len(ids) < CLEAR_BATCH:
                return deleted
            after = max(ids)

    # -- reads ---------------------------------------------------------------------------------------------
    def get_run(self, run_id: int) -> dict[str, Any] | None:
        rows = self.store.read(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
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
        return self.store.read(f"SELECT {RUN_COLUMNS} FROM runs{clause} ORDER BY id DESC LIMIT ?", (*params, limit))

    def running_runs(self) -> list[dict[str, Any]]:
        return self.store.read(f"SELECT {RUN_COLUMNS} FROM runs WHERE outcome = 'running' ORDER BY id")

    def list_steps(self, run_id: int) -> list[dict[str, Any]]:
        return self.store.read(f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ? ORDER BY id", (run_id,))

    def list_errors(self, run_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        return self.store.read(
            f"SELECT {ERROR_COLUMNS} FROM run_errors WHERE run_id = ? ORDER BY id LIMIT ?", (run_id, limit)
        )

    def count_errors(self, run_id: int) -> int:
        return int(self.store.read("SELECT COUNT(*) AS n FROM run_errors WHERE run_id = ?", (run_id,))[0]["n"])


def _club(club_slug: str | None) -> str:
    """club_slug is NOT NULL, with the original's default: None means that default."""
    return DEFAULT_CLUB_SLUG if club_slug is None else club_slug


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
