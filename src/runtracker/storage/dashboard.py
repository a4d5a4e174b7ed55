"""The dashboard's queries: every page's reads, its users and API keys, and clearing errors.

Written for a long history (a million runs, millions of errors) on SQLite and PostgreSQL alike. The rules:

- **Keyset pagination.** A page starts after the last row of the one before (a cursor), never at an OFFSET:
  page 2,000 costs what page 1 costs. Runs are ordered by (started_at, id), errors by (created_at, id) (one
  member's by id, a pipeline's run by run), newest first; every order is an index's order, so a page reads its
  rows and stops.
- **Bounded work.** Nothing counts every match: counts stop at a cap ("1,000+"). A filter that no index
  serves (free text; a pipeline, which errors do not store) is applied while walking an index, and the walk
  is bounded by a *window* (the latest N errors or runs); the page says how far back it searched and offers
  to search further. So no page reads all of `run_errors`.
- **Which index drives** an error query is chosen here, from the filters (`ErrorFilter.mode`): one member's
  errors (idx_run_errors_member), a pipeline's errors run by run (its runs by idx_runs_pipeline_started, then
  each run's errors by idx_run_errors_run_id), one step's (the original tool's idx_run_errors_club_step), or
  all of them (idx_run_errors_created). `tests/web/test_query_plans.py` checks the plans on both backends.
- **LIMIT and OFFSET are literals** (integers, formatted in): PostgreSQL plans a statement whose LIMIT is a
  parameter anew at every execution (its generic plan cannot know how few rows are wanted), which cost more
  than running it (1.1 ms of planning for the overview's 0.4 ms union); with literals psycopg's prepared
  statements keep one plan. Only a few values occur (page sizes, caps, windows).
- Nothing here is on the pipelines' write path: grouping similar errors happens in Python over a window of
  rows (runtracker.web.grouping), not in columns or triggers that `record_errors` would have to fill.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from ..base.clock import now_iso
from ..base.outcomes import CRASH_STEP, SUCCESS
from ..base.records import Record
from .base import RUN_COLUMNS, Store

T = TypeVar("T")

# A run as list pages show it (no output tail, no summary: those are for the run's own page).
RUN_LIST_COLUMNS = (
    "id, pipeline, started_at, finished_at, duration_ms, outcome, total_created, total_updated, total_skipped,"
    " total_failed, started_by, ended_by, reaped_at"
)
# What a sparkline or a chart needs of a run.
RUN_BAR_COLUMNS = "id, pipeline, started_at, duration_ms, outcome"
ERROR_COLUMNS = (
    "e.id, e.run_id, e.run_step_id, e.step_name, e.member_identifier, e.error_message, e.error_stack, e.created_at"
)
# What grouping needs of an error.
GROUP_COLUMNS = "e.run_id, e.step_name, e.member_identifier, e.error_message, e.created_at, r.pipeline"
# How many runs the union of one overview query covers (each pipeline's latest runs is one sub-select).
PIPELINES_PER_QUERY = 50
# The pipelines' names: one index probe per name (a "loose index scan"), not a walk over every run.
PIPELINE_NAMES = (
    "WITH RECURSIVE p(name) AS (SELECT MIN(pipeline) FROM runs UNION ALL"
    " SELECT (SELECT MIN(pipeline) FROM runs WHERE pipeline > p.name) FROM p WHERE p.name IS NOT NULL)"
    " SELECT name FROM p WHERE name IS NOT NULL"
)
CLUBS = (
    "WITH RECURSIVE c(slug) AS (SELECT MIN(club_slug) FROM run_errors UNION ALL"
    " SELECT (SELECT MIN(club_slug) FROM run_errors WHERE club_slug > c.slug) FROM c WHERE c.slug IS NOT NULL)"
    " SELECT slug FROM c WHERE slug IS NOT NULL"
)
STEP_NAMES = (
    "WITH RECURSIVE s(name) AS (SELECT MIN(step_name) FROM run_errors WHERE club_slug = ? UNION ALL"
    " SELECT (SELECT MIN(step_name) FROM run_errors WHERE club_slug = ? AND step_name > s.name) FROM s"
    " WHERE s.name IS NOT NULL) SELECT name FROM s WHERE name IS NOT NULL"
)
# How many rows one DELETE of "clear errors" removes: each batch is a transaction of its own, so pipelines
# writing meanwhile wait for one batch, never for the whole clearing.
CLEAR_BATCH = 5000
CLEAR_RUNS = 500  # runs whose errors one batch deletes, when clearing a pipeline's errors

# Error query modes: which index drives the walk.
BY_MEMBER = "member"
BY_PIPELINE = "pipeline"
BY_STEP = "step"
BY_TIME = "time"


class ErrorFilter(Record):
    """What the error browser is asked for. Empty strings count as not given. `since`/`until` bound
    `created_at` (ISO text, `until` exclusive); `text` is a case-insensitive substring of the message."""

    __slots__ = ("pipeline", "step", "member", "text", "since", "until")

    def __init__(self, pipeline: str | None = None, step: str | None = None, member: str | None = None,
                 text: str | None = None, since: str | None = None, until: str | None = None) -> None:
        self.pipeline = pipeline or None
        self.step = step or None
        self.member = member or None
        self.text = text or None
        self.since = since or None
        self.until = until or None

    @property
    def mode(self) -> str:
        """The index that drives the walk: the most selective filter that one serves."""
        if self.member:
            return BY_MEMBER
        if self.pipeline:
            return BY_PIPELINE
        if self.step:
            return BY_STEP
        return BY_TIME

    def any(self) -> bool:
        return any(self.fields().values())


class ErrorCursor(Record):
    """Where a page of errors starts: after the error (created_at, id); in the pipeline mode after the error
    `error_id` of the run (run_started_at, run_id)."""

    __slots__ = ("created_at", "error_id", "run_started_at", "run_id")

    def __init__(self, created_at: str | None = None, error_id: int | None = None,
                 run_started_at: str | None = None, run_id: int | None = None) -> None:
        self.created_at = created_at
        self.error_id = error_id
        self.run_started_at = run_started_at
        self.run_id = run_id


class ErrorPage(Record):
    """A page of errors: `rows`; `next` the cursor of the page after it (None: there is none); `window_end`
    set when the walk stopped at its window before the page was full (more matches may lie further back:
    `next` then continues from there)."""

    __slots__ = ("rows", "next", "window_end")

    def __init__(self, rows: list[dict[str, Any]], next: ErrorCursor | None, window_end: str | None) -> None:
        self.rows = rows
        self.next = next
        self.window_end = window_end


# `Dashboard._bounded_read`'s window when the walk was bounded inside the query (PostgreSQL).
WALKED = ErrorCursor()


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own `%`, `_` and `\\` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Dashboard:
    """The dashboard's reads and writes on one store."""

    # The latest errors (or, in the pipeline mode, runs) that a filter no index serves is tried on.
    ERROR_WINDOW = 20_000
    RUN_WINDOW = 5_000
    # A bounded walk first tries a window this many times smaller: finding where the whole window ends is a walk
    # of 20,000 index entries (with heap fetches on PostgreSQL: most of a text search's time), while a filter
    # that matches often fills its page within the first thousand. Whatever the small window finds is what the
    # whole window would: it is the newest part of it, in the same order.
    FIRST_WINDOW_DIVISOR = 16

    def __init__(self, store: Store) -> None:
        self.store = store
        self._memo_lock = threading.Lock()
        self._memo_token: object = None
        self._memo: dict[Hashable, Any] = {}

    def unchanged(self, key: Hashable, read: Callable[[], T]) -> T:
        """What `read()` returned for `key`, again while nothing was committed to the database since
        (`Store.change_token`); otherwise read anew. The overview, refreshed every minute by every open browser,
        then costs one cheap look at the database instead of its queries while nothing happened. The token is
        taken before reading, so what is kept is never older than its token."""
        token = self.store.change_token()
        if token is None:
            return read()
        with self._memo_lock:
            if token != self._memo_token:
                self._memo_token, self._memo = token, {}
            elif key in self._memo:
                return self._memo[key]  # type: ignore[no-any-return]
        value = read()
        with self._memo_lock:
            if token == self._memo_token:
                self._memo[key] = value
        return value

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.store.read(sql, params)

    # -- users and API keys --------------------------------------------------------------------------------
    def add_user(self, name: str, password_hash: str) -> bool:
        """False if a user of that name exists."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)"
                                       " ON CONFLICT (name) DO NOTHING RETURNING id"),
                        (name, password_hash, now_iso()))
            return cur.fetchone() is not None

    def set_password(self, name: str, password_hash: str) -> bool:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("UPDATE users SET password_hash = ? WHERE name = ?"), (password_hash, name))
            return bool(cur.rowcount)

    def remove_user(self, name: str) -> bool:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM users WHERE name = ?"), (name,))
            return bool(cur.rowcount)

    def user(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT id, name, password_hash, created_at FROM users WHERE name = ?", (name,))
        return rows[0] if rows else None

    def users(self) -> list[dict[str, Any]]:
        return self._read("SELECT id, name, created_at FROM users ORDER BY name")

    def user_count(self) -> int:
        return int(self._read("SELECT COUNT(*) AS n FROM users")[0]["n"])

    def add_api_key(self, name: str, key_hash: str) -> int:
        with self.store.transaction() as cur:
            return self.store.insert_returning_id(
                cur, "INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)", (name, key_hash, now_iso()))

    def api_key(self, key_hash: str) -> dict[str, Any] | None:
        rows = self._read("SELECT id, name, created_at, last_used_at FROM api_keys WHERE key_hash = ?", (key_hash,))
        return rows[0] if rows else None

    def touch_api_key(self, key_id: int, at: str) -> None:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("UPDATE api_keys SET last_used_at = ? WHERE id = ?"), (at, key_id))

    def remove_api_keys(self, name: str) -> int:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM api_keys WHERE name = ?"), (name,))
            return int(cur.rowcount or 0)

    def api_keys(self) -> list[dict[str, Any]]:
        return self._read("SELECT id, name, created_at, last_used_at FROM api_keys ORDER BY name, id")

    # -- health ------------------------------------------------------------------------------------------
    def health(self) -> dict[str, int]:
        """The schema version and how many runs are `running` (read from the partial index idx_runs_running)."""
        return {"schema_version": self.store.schema_version(), "running": self.running_count()}

    def running_count(self) -> int:
        return int(self._read("SELECT COUNT(*) AS n FROM runs WHERE outcome = 'running'")[0]["n"])

    # -- the overview ------------------------------------------------------------------------------------
    def pipeline_names(self) -> list[str]:
        return [str(row["name"]) for row in self._read(PIPELINE_NAMES)]

    def running_runs(self) -> list[dict[str, Any]]:
        return self._read(f"SELECT {RUN_LIST_COLUMNS}, hostname, pid FROM runs WHERE outcome = 'running'"
                          " ORDER BY started_at, id")

    def running_run(self, pipeline: str) -> dict[str, Any] | None:
        """The pipeline's `running` run, whoever started it (a probe of idx_runs_pipeline_outcome_started)."""
        rows = self._read(f"SELECT {RUN_LIST_COLUMNS} FROM runs WHERE pipeline = ? AND outcome = 'running'"
                          " ORDER BY started_at DESC LIMIT 1", (pipeline,))
        return rows[0] if rows else None

    def run_of_process(self, pipeline: str, pid: int) -> dict[str, Any] | None:
        """The run a process just started (the dashboard's Start): among the pipeline's latest runs."""
        rows = self._read(f"SELECT {RUN_LIST_COLUMNS}, pid FROM runs WHERE pipeline = ?"
                          " ORDER BY started_at DESC, id DESC LIMIT 10", (pipeline,))
        return next((row for row in rows if row["pid"] == pid), None)

    def latest_runs(self, pipelines: Sequence[str], limit: int = 30, outcome: str | None = None,
                    columns: str = RUN_LIST_COLUMNS) -> dict[str, list[dict[str, Any]]]:
        """Each pipeline's latest `limit` runs (of one `outcome`, if given), newest first: one index range per
        pipeline, all of them in one statement per PIPELINES_PER_QUERY pipelines."""
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in pipelines}
        where = "pipeline = ?" + (" AND outcome = ?" if outcome else "")
        part = (f"SELECT * FROM (SELECT {columns} FROM runs WHERE {where}"
                f" ORDER BY started_at DESC, id DESC LIMIT {int(limit)}) AS t{{n}}")
        names = list(found)
        for start in range(0, len(names), PIPELINES_PER_QUERY):
            chunk = names[start : start + PIPELINES_PER_QUERY]
            sql = " UNION ALL ".join(part.format(n=i) for i in range(len(chunk)))
            params: list[Any] = []
            for name in chunk:
                params += [name, outcome] if outcome else [name]
            for row in self._read(sql, params):
                found[row["pipeline"]].append(row)
        for rows in found.values():
            rows.sort(key=lambda r: (r["started_at"], r["id"]), reverse=True)
        return found

    def successful_durations(self, pipeline: str, limit: int, before: str | None = None) -> list[int]:
        """The durations of the pipeline's latest `limit` successful runs (started before `before`)."""
        sql = "SELECT duration_ms FROM runs WHERE pipeline = ? AND outcome = ?"
        params: list[Any] = [pipeline, SUCCESS]
        if before is not None:
            sql += " AND started_at <= ?"
            params.append(before)
        rows = self._read(sql + f" ORDER BY started_at DESC LIMIT {int(limit)}", params)
        return [int(row["duration_ms"]) for row in rows if row["duration_ms"] is not None]

    def outcome_counts_since(self, since: str) -> list[dict[str, Any]]:
        """Runs started since `since` by pipeline and outcome (a range of idx_runs_started_at)."""
        return self._read("SELECT pipeline, outcome, COUNT(*) AS n FROM runs WHERE started_at >= ?"
                          " GROUP BY pipeline, outcome", (since,))

    def crashes_since(self, since: str) -> list[dict[str, Any]]:
        """Crash rows recorded since `since`, by pipeline (ranges of the original tool's club/step index)."""
        clubs = self.clubs()
        if not clubs:
            return []
        marks = ", ".join("?" * len(clubs))
        return self._read(
            # LEFT JOIN: the crash rows drive (a range of the index), each one's run is a probe.
            "SELECT r.pipeline, COUNT(*) AS n FROM run_errors e LEFT JOIN runs r ON r.id = e.run_id"
            f" WHERE e.club_slug IN ({marks}) AND e.step_name = ? AND e.created_at >= ? GROUP BY r.pipeline",
            (*clubs, CRASH_STEP, since))

    # -- a pipeline's history --------------------------------------------------------------------------------
    def history(self, pipeline: str, limit: int, before: tuple[str, int] | None = None) -> list[dict[str, Any]]:
        """The pipeline's runs newest first, started before the run `before` = (started_at, id)."""
        sql = f"SELECT {RUN_LIST_COLUMNS} FROM runs WHERE pipeline = ?"
        params: list[Any] = [pipeline]
        if before is not None:
            sql += " AND started_at <= ? AND (started_at < ? OR id < ?)"
            params += [before[0], before[0], before[1]]
        return self._read(sql + f" ORDER BY started_at DESC, id DESC LIMIT {int(limit)}", params)

    def history_after(self, pipeline: str, limit: int, after: tuple[str, int]) -> list[dict[str, Any]]:
        """The pipeline's runs started after the run `after`, oldest first (the page before, reversed)."""
        return self._read(
            f"SELECT {RUN_LIST_COLUMNS} FROM runs WHERE pipeline = ? AND started_at >= ? AND (started_at > ? OR id > ?)"
            f" ORDER BY started_at, id LIMIT {int(limit)}", (pipeline, after[0], after[0], after[1]))

    def run_position(self, run_id: int) -> dict[str, Any] | None:
        """A run's pipeline and (started_at, id): where a page of its pipeline's history starts."""
        rows = self._read("SELECT id, pipeline, started_at FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def count_runs(self, pipeline: str, cap: int) -> int:
        """How many runs the pipeline has, counting no further than `cap` + 1."""
        # Ordered as the index is: a walk of idx_runs_pipeline_started that stops at the cap, never a table scan.
        return int(self._read("SELECT COUNT(*) AS n FROM (SELECT 1 FROM runs WHERE pipeline = ?"
                              f" ORDER BY started_at DESC LIMIT {int(cap) + 1}) AS t", (pipeline,))[0]["n"])

    def list_runs(self, *, pipeline: str | None = None, outcome: str | None = None, limit: int = 50,
                  before: tuple[str, int] | None = None) -> list[dict[str, Any]]:
        """Runs newest first (the API's /api/runs): by pipeline and outcome, or all of them."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("pipeline", pipeline), ("outcome", outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("started_at <= ? AND (started_at < ? OR id < ?)")
            params += [before[0], before[0], before[1]]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self._read(f"SELECT {RUN_LIST_COLUMNS} FROM runs{clause} ORDER BY started_at DESC, id DESC"
                          f" LIMIT {int(limit)}", params)

    # -- one run -----------------------------------------------------------------------------------------
    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {RUN_COLUMNS}, output_tail FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        return self.store.list_steps(run_id)

    def crash_rows(self, run_id: int) -> list[dict[str, Any]]:
        return self._read(f"SELECT {ERROR_COLUMNS} FROM run_errors e WHERE e.run_id = ? AND e.step_name = ?"
                          " ORDER BY e.id", (run_id, CRASH_STEP))

    def run_errors(self, run_id: int, limit: int, after_id: int | None = None) -> list[dict[str, Any]]:
        """A run's errors in the order they were recorded, after the error `after_id`."""
        sql = f"SELECT {ERROR_COLUMNS} FROM run_errors e WHERE e.run_id = ?"
        params: list[Any] = [run_id]
        if after_id is not None:
            sql += " AND e.id > ?"
            params.append(after_id)
        return self._read(sql + f" ORDER BY e.id LIMIT {int(limit)}", params)

    def count_run_errors(self, run_id: int, cap: int) -> int:
        return int(self._read("SELECT COUNT(*) AS n FROM (SELECT 1 FROM run_errors WHERE run_id = ?"
                              f" LIMIT {int(cap) + 1}) AS t", (run_id,))[0]["n"])

    # -- errors across runs ------------------------------------------------------------------------------
    def clubs(self) -> list[str]:
        return [str(row["slug"]) for row in self._read(CLUBS)]

    def step_names(self) -> list[str]:
        """Every step name errors were recorded under (a probe per name of the club/step index)."""
        names: set[str] = set()
        for club in self.clubs():
            names.update(str(row["name"]) for row in self._read(STEP_NAMES, (club, club)))
        return sorted(names)

    def errors(self, flt: ErrorFilter, limit: int, cursor: ErrorCursor | None = None) -> ErrorPage:
        """A page of errors matching `flt`, newest first, after `cursor`."""
        window: ErrorCursor | None = None
        for size in self._window_sizes(flt):
            rows, window = self._bounded_read(flt, cursor, size, limit + 1)
            if window is None or len(rows) > limit:
                break  # unbounded, or the page is full: a larger window finds the same rows
        more = len(rows) > limit
        rows = rows[:limit]
        window_end = None
        if more:
            next_cursor: ErrorCursor | None = self._cursor_after(flt, rows[-1])
        else:
            if window is WALKED:  # read within a subquery: where did the window end?
                window = self._window(flt, cursor, size)
            if window is not None:
                # The window ended before the page filled: the next page searches on from the window's end.
                next_cursor, window_end = window, window.created_at or window.run_started_at
            else:
                next_cursor = None
        return ErrorPage(rows, next_cursor, window_end)

    def error_window(self, flt: ErrorFilter, size: int) -> list[dict[str, Any]]:
        """The latest `size` errors matching `flt`, for grouping (fewer when a window bounds the walk): only the
        columns grouping needs (no stacks: reading thousands of them is most of the cost)."""
        for window_size in self._window_sizes(flt):
            rows, window = self._bounded_read(flt, None, window_size, size, GROUP_COLUMNS)
            if window is None or len(rows) >= size:
                break
        return rows

    def count_errors(self, flt: ErrorFilter, cap: int) -> int:
        """How many errors match `flt` (within the window the first page searches), counting to `cap` + 1."""
        for size in self._window_sizes(flt):
            rows, window = self._bounded_read(flt, None, size, cap + 1, "1", counting=True)
            count = int(rows[0]["n"])
            if window is None or count > cap:
                break
        return count

    def _bounded_read(self, flt: ErrorFilter, cursor: ErrorCursor | None, size: int, limit: int,
                      columns: str | None = None, counting: bool = False) -> tuple[list[dict[str, Any]],
                                                                                      ErrorCursor | None]:
        """Up to `limit` errors matching `flt` after `cursor`, within the window of `size` (when a filter no index
        serves bounds the walk); and the window: None when unbounded or reaching past the oldest row, WALKED when
        the walk was bounded inside the query (where it ended is not known). `counting`: their count instead.

        SQLite: the window's end is found first (`_window`), and the page's query stops there. PostgreSQL: the
        window is a subquery of the driving index's rows with a LIMIT, which its planner walks lazily, so the
        page stops as soon as it is full, without finding where the window would end (with the bound in the
        WHERE clause instead, PostgreSQL estimates the range as a row or two and reads and sorts all of it)."""
        window: ErrorCursor | None
        if self.store.dialect == "postgresql" and self._bounded(flt):
            sql, params = self._select_within(flt, cursor, size, limit, columns, counting)
            window = WALKED
        else:
            window = self._window(flt, cursor, size)
            where, params = self._where(flt, cursor, window)
            sql = self._select(flt, where, "", limit, columns, counting)
        if counting:
            sql = f"SELECT COUNT(*) AS n FROM ({sql}) AS t"
        return self._read(sql, params), window

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
            conditions.append(self._like("error_message"))
            params.append(like_pattern(flt.text))
        where = " AND ".join(conditions)
        deleted = 0
        if flt.pipeline:
            before: tuple[str, int] | None = None
            while True:
                runs = self.history(flt.pipeline, CLEAR_RUNS, before)
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

    # -- building the error queries ----------------------------------------------------------------------
    def _like(self, column: str) -> str:
        # Case-insensitive on both: SQLite's LIKE already is (for ASCII), PostgreSQL's is not.
        operator = "ILIKE" if self.store.dialect == "postgresql" else "LIKE"
        return f"{column} {operator} ? ESCAPE '\\'"

    def _select(self, flt: ErrorFilter, where: str, order_suffix: str, limit: int, columns: str | None = None,
                counting: bool = False) -> str:
        """The query of a page (or, `counting`, of the rows a capped count reads: which rows does not matter
        then, only that the walk follows the driving index and stops at the cap, so the order is the index's
        leading key alone, with no tiebreaker to sort by, and runs are joined only if a filter needs them)."""
        if flt.mode == BY_PIPELINE:
            # The pipeline's runs drive (newest first), each run's errors by idx_run_errors_run_id. SQLite's
            # CROSS JOIN keeps that order of the loops; PostgreSQL's planner is told by LATERAL.
            cols = columns or f"{ERROR_COLUMNS}, r.pipeline, r.started_at AS run_started_at"
            if self.store.dialect == "postgresql":
                join = "runs r CROSS JOIN LATERAL (SELECT * FROM run_errors x WHERE x.run_id = r.id) AS e"
            else:
                join = "runs r CROSS JOIN run_errors e ON e.run_id = r.id"
            order = "r.started_at DESC, r.id DESC" + ("" if counting else ", e.id DESC")
            return f"SELECT {cols} FROM {join} WHERE {where} ORDER BY {order} LIMIT {int(limit)}"
        cols = columns or f"{ERROR_COLUMNS}, r.pipeline"
        # LEFT JOIN: the errors drive (by the index the mode chose), each one's run is a probe of its key. One
        # member's errors come by id, the order of idx_run_errors_member (recorded order: newest first).
        if flt.mode == BY_MEMBER:
            order = "e.id DESC"
        else:
            order = "e.created_at DESC" + ("" if counting else ", e.id DESC")
        join = "" if counting and "r." not in where else " LEFT JOIN runs r ON r.id = e.run_id"
        return f"SELECT {cols} FROM run_errors e{join} WHERE {where} ORDER BY {order} LIMIT {int(limit)}"

    def _driving(self, flt: ErrorFilter) -> tuple[list[str], list[Any]]:
        """The conditions of the index that drives the walk, and the filters applied to the errors."""
        where: list[str] = []
        params: list[Any] = []
        mode = flt.mode
        if mode == BY_MEMBER:
            where.append("e.member_identifier = ?")
            params.append(flt.member)
        elif mode == BY_PIPELINE:
            where.append("r.pipeline = ?")
            params.append(flt.pipeline)
        elif mode == BY_STEP:
            clubs = self.clubs() or ["rondo"]
            where.append(f"e.club_slug IN ({', '.join('?' * len(clubs))})")
            params += clubs
        if flt.step:
            where.append("e.step_name = ?")
            params.append(flt.step)
        if flt.pipeline and mode != BY_PIPELINE:
            where.append("r.pipeline = ?")
            params.append(flt.pipeline)
        if flt.since:
            where.append("e.created_at >= ?")
            params.append(flt.since)
        if flt.until:
            where.append("e.created_at < ?")
            params.append(flt.until)
            if mode == BY_PIPELINE:  # an error comes after its run's start: older runs only
                where.append("r.started_at < ?")
                params.append(flt.until)
        return where, params

    def _where(self, flt: ErrorFilter, cursor: ErrorCursor | None,
               window: ErrorCursor | None) -> tuple[str, list[Any]]:
        where, params = self._driving(flt)
        if flt.text:
            where.append(self._like("e.error_message"))
            params.append(like_pattern(flt.text))
        if flt.mode == BY_PIPELINE:
            if cursor is not None and cursor.run_started_at is not None:
                where.append("r.started_at <= ? AND (r.started_at < ? OR r.id < ? OR (r.id = ? AND e.id < ?))")
                params += [cursor.run_started_at, cursor.run_started_at, cursor.run_id, cursor.run_id,
                           cursor.error_id]
            if window is not None:
                where.append("r.started_at >= ? AND (r.started_at > ? OR r.id >= ?)")
                params += [window.run_started_at, window.run_started_at, window.run_id]
        elif flt.mode == BY_MEMBER:
            if cursor is not None and cursor.error_id is not None:
                where.append("e.id < ?")
                params.append(cursor.error_id)
            if window is not None:
                where.append("e.id >= ?")
                params.append(window.error_id)
        else:
            if cursor is not None and cursor.created_at is not None:
                where.append("e.created_at <= ? AND (e.created_at < ? OR e.id < ?)")
                params += [cursor.created_at, cursor.created_at, cursor.error_id]
            if window is not None:
                where.append("e.created_at >= ? AND (e.created_at > ? OR e.id >= ?)")
                params += [window.created_at, window.created_at, window.error_id]
        return " AND ".join(where) or "1 = 1", params

    def _window_sizes(self, flt: ErrorFilter) -> tuple[int, ...]:
        """The windows a bounded walk tries, the small one first (see FIRST_WINDOW_DIVISOR)."""
        if not self._bounded(flt):
            return (0,)
        full = self.RUN_WINDOW if flt.mode == BY_PIPELINE else self.ERROR_WINDOW
        return max(1, full // self.FIRST_WINDOW_DIVISOR), full

    @staticmethod
    def _bounded(flt: ErrorFilter) -> bool:
        """Whether a filter no index serves is applied while walking: then a window bounds the walk."""
        if flt.mode == BY_PIPELINE:  # errors do not store their pipeline: its runs drive, any run may have none
            return True
        if flt.mode == BY_MEMBER:  # idx_run_errors_member holds the member (and the id): all else is a filter
            return bool(flt.text or flt.pipeline or flt.step or flt.since or flt.until)
        return bool(flt.text)

    def _walk(self, flt: ErrorFilter, cursor: ErrorCursor | None) -> tuple[str, list[Any], str]:
        """The driving index's walk of a bounded page: its conditions (on `runs` in the pipeline mode, else on
        `run_errors e`), their parameters, and its order."""
        if flt.mode == BY_PIPELINE:
            where = ["pipeline = ?"]
            params: list[Any] = [flt.pipeline]
            if flt.until:
                where.append("started_at < ?")
                params.append(flt.until)
            if cursor is not None and cursor.run_started_at is not None:
                # The cursor's run may have more errors after the cursor: the window includes it.
                where.append("started_at <= ? AND (started_at < ? OR id <= ?)")
                params += [cursor.run_started_at, cursor.run_started_at, cursor.run_id]
            return " AND ".join(where), params, "started_at DESC, id DESC"
        if flt.mode == BY_MEMBER:
            where, params = ["e.member_identifier = ?"], [flt.member]
            if cursor is not None and cursor.error_id is not None:
                where.append("e.id < ?")
                params.append(cursor.error_id)
            return " AND ".join(where), params, "e.id DESC"
        where, params = self._driving(ErrorFilter(step=flt.step if flt.mode == BY_STEP else None,
                                                  since=flt.since, until=flt.until))
        if cursor is not None and cursor.created_at is not None:
            where.append("e.created_at <= ? AND (e.created_at < ? OR e.id < ?)")
            params += [cursor.created_at, cursor.created_at, cursor.error_id]
        return " AND ".join(where) or "1 = 1", params, "e.created_at DESC, e.id DESC"

    def _window(self, flt: ErrorFilter, cursor: ErrorCursor | None, size: int) -> ErrorCursor | None:
        """Where the walk of a page stops when a filter no index serves is applied: the cursor of the last
        error (or run) of the window of `size` errors (runs), read from the driving index alone. None: the walk
        is not bounded (every filter is in the index), or the window reaches past the oldest row."""
        if not self._bounded(flt):
            return None
        where, params, order = self._walk(flt, cursor)
        if flt.mode == BY_PIPELINE:
            rows = self._read(f"SELECT started_at, id FROM runs WHERE {where} ORDER BY {order}"
                              f" LIMIT 1 OFFSET {int(size) - 1}", params)
            # The window's end is a cursor "after every error of its oldest run".
            return ErrorCursor(run_started_at=rows[0]["started_at"], run_id=rows[0]["id"], error_id=0) if rows \
                else None
        rows = self._read(f"SELECT e.created_at, e.id FROM run_errors e WHERE {where}"
                          f" ORDER BY {order} LIMIT 1 OFFSET {int(size) - 1}", params)
        return ErrorCursor(created_at=rows[0]["created_at"], error_id=rows[0]["id"]) if rows else None

    def _select_within(self, flt: ErrorFilter, cursor: ErrorCursor | None, size: int, limit: int,
                       columns: str | None, counting: bool) -> tuple[str, list[Any]]:
        """PostgreSQL's bounded page: the window is a subquery (the driving index's latest `size` rows after the
        cursor), the filters apply to its rows as they come."""
        walk, walk_params, walk_order = self._walk(flt, cursor)
        where, params = self._where(flt, cursor, None)
        if flt.mode == BY_PIPELINE:
            cols = columns or f"{ERROR_COLUMNS}, r.pipeline, r.started_at AS run_started_at"
            runs = (f"(SELECT id, pipeline, started_at FROM runs WHERE {walk} ORDER BY {walk_order}"
                    f" LIMIT {int(size)}) AS r")
            order = "r.started_at DESC, r.id DESC" + ("" if counting else ", e.id DESC")
            return (f"SELECT {cols} FROM {runs} CROSS JOIN LATERAL (SELECT * FROM run_errors x WHERE x.run_id = r.id)"
                    f" AS e WHERE {where} ORDER BY {order} LIMIT {int(limit)}", walk_params + params)
        cols = columns or f"{ERROR_COLUMNS}, r.pipeline"
        errors = f"(SELECT * FROM run_errors e WHERE {walk} ORDER BY {walk_order} LIMIT {int(size)}) AS e"
        join = "" if counting and "r." not in where else " LEFT JOIN runs r ON r.id = e.run_id"
        order = "e.id DESC" if flt.mode == BY_MEMBER else "e.created_at DESC, e.id DESC"
        return (f"SELECT {cols} FROM {errors}{join} WHERE {where} ORDER BY {order} LIMIT {int(limit)}",
                walk_params + params)

    @staticmethod
    def _cursor_after(flt: ErrorFilter, row: dict[str, Any]) -> ErrorCursor:
        if flt.mode == BY_PIPELINE:
            return ErrorCursor(run_started_at=row["run_started_at"], run_id=row["run_id"], error_id=row["id"])
        return ErrorCursor(created_at=row["created_at"], error_id=row["id"])

