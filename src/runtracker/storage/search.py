"""The error browser's queries: a page of errors by any filter, a window of them for grouping, a capped count.

Written for millions of errors, on SQLite and PostgreSQL alike, by the rules of `dashboard` (keyset pages,
bounded work, literal LIMITs), and:

- **Which index drives** an error query is chosen here, from the filters (`ErrorFilter.mode`): one member's
  errors (idx_run_errors_member), a pipeline's errors run by run (its runs by idx_runs_pipeline_started, then
  each run's errors by idx_run_errors_run_id), one step's (the original tool's idx_run_errors_club_step), or
  all of them (idx_run_errors_created). `tests/web/test_query_plans.py` checks the plans on both backends.
- **Bounded walks.** A filter that no index serves (free text; a pipeline, which errors do not store) is
  applied while walking an index, and the walk is bounded by a *window* (the latest N errors or runs); the page
  says how far back it searched and offers to search further. So no page reads all of `run_errors`.
- Grouping similar errors happens in Python over a window of rows (runtracker.web.grouping), not in columns or
  triggers that `record_errors` would have to fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..base.records import Record
from .base import Store
from .errorfilter import BY_MEMBER, BY_PIPELINE, BY_STEP, ErrorFilter, like, like_pattern

ERROR_COLUMNS = (
    "e.id, e.run_id, e.run_step_id, e.step_name, e.member_identifier, e.error_message, e.error_stack, e.created_at"
)
# What grouping needs of an error (and its id, by which a window's rows are kept: web.grouping.WindowGroups).
GROUP_COLUMNS = "e.id, e.run_id, e.step_name, e.member_identifier, e.error_message, e.created_at, r.pipeline"
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


# `ErrorSearch._bounded_read`'s window when the walk was bounded inside the query (PostgreSQL).
WALKED = ErrorCursor()


def clubs(store: Store) -> list[str]:
    """The clubs errors were recorded for (a probe per club of the club/step index)."""
    return [str(row["slug"]) for row in store.read(CLUBS)]


class ErrorSearch:
    """The error browser's reads on one store."""

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

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.store.read(sql, params)

    def step_names(self) -> list[str]:
        """Every step name errors were recorded under (a probe per name of the club/step index)."""
        names: set[str] = set()
        for club in clubs(self.store):
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

    def error_window_ids(self, flt: ErrorFilter, size: int) -> list[int]:
        """The ids of `error_window(flt, size)`'s rows, in its order: the same walk, reading only the id (for
        the unfiltered window on SQLite, idx_run_errors_created alone). What a cache of the window's rows needs
        to know that nothing in it changed: an error never changes once recorded and its id is never reused
        (AUTOINCREMENT, a sequence), so the same ids are the same rows."""
        for window_size in self._window_sizes(flt):
            rows, window = self._bounded_read(flt, None, window_size, size, "e.id AS id")
            if window is None or len(rows) >= size:
                break
        return [int(row["id"]) for row in rows]

    def errors_by_id(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The errors `ids` with what grouping needs of them (GROUP_COLUMNS and the id), in no order: probes of
        the primary key, 500 ids a statement."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            found += self._read(f"SELECT {GROUP_COLUMNS} FROM run_errors e LEFT JOIN runs r ON r.id = e.run_id"
                                f" WHERE e.id IN ({', '.join('?' * len(chunk))})", chunk)
        return found

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
            slugs = clubs(self.store) or ["rondo"]
            where.append(f"e.club_slug IN ({', '.join('?' * len(slugs))})")
            params += slugs
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
            where.append(like(self.store.dialect, "e.error_message"))
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
