"""The dashboard's reads of runs: the overview, a pipeline's history, one run, health, and what /metrics counts.

Written for a long history (a million runs, millions of errors) on SQLite and PostgreSQL alike. The rules, which
the error browser's queries (`search`) follow too:

- **Keyset pagination.** A page starts after the last row of the one before (a cursor), never at an OFFSET:
  page 2,000 costs what page 1 costs. Runs are ordered by (started_at, id), errors by (created_at, id) (one
  member's by id, a pipeline's run by run), newest first; every order is an index's order, so a page reads its
  rows and stops. `tests/web/test_query_plans.py` checks the plans on both backends.
- **Bounded work.** Nothing counts every match: counts stop at a cap ("1,000+").
- **LIMIT and OFFSET are literals** (integers, formatted in): PostgreSQL plans a statement whose LIMIT is a
  parameter anew at every execution (its generic plan cannot know how few rows are wanted), which cost more
  than running it (1.1 ms of planning for the overview's 0.4 ms union); with literals psycopg's prepared
  statements keep one plan. Only a few values occur (page sizes, caps, windows).
- Read-only: nothing here is on the pipelines' write path. The dashboard's one write, clearing errors, is
  `runs.Runs.clear_errors`; its users and API keys are `auth.Auth`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from ..base.outcomes import CRASH_STEP, RUN_OUTCOMES, SUCCESS
from .base import Store
from .runs import RUN_COLUMNS, RUN_LIST_COLUMNS, Runs, history_query
from .search import ERROR_COLUMNS, clubs

T = TypeVar("T")

# A run the reaper ended (its process was gone): an outcome of its own on the runs page, `failure` in the table.
LOST = "lost"

# What a sparkline or a chart needs of a run.
RUN_BAR_COLUMNS = "id, pipeline, started_at, duration_ms, outcome"
# How many runs the union of one overview query covers (each pipeline's latest runs is one sub-select).
PIPELINES_PER_QUERY = 50
# The pipelines' names: one index probe per name (a "loose index scan"), not a walk over every run.
PIPELINE_NAMES = (
    "WITH RECURSIVE p(name) AS (SELECT MIN(pipeline) FROM runs UNION ALL"
    " SELECT (SELECT MIN(pipeline) FROM runs WHERE pipeline > p.name) FROM p WHERE p.name IS NOT NULL)"
    " SELECT name FROM p WHERE name IS NOT NULL"
)


class Dashboard:
    """The dashboard's reads of runs on one store."""

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
        return self._read(f"SELECT {RUN_LIST_COLUMNS}, hostname, pid, heartbeat_at FROM runs WHERE outcome = 'running'"
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

    def why_failed(self, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """For each of these runs (the overview's failed and partial ones): its `exit_code`, `summary_json` and
        `first_error`, the message of its first error row (None without one). Two statements per
        PIPELINES_PER_QUERY runs, whatever their number: a probe of the primary key each, and one index range of
        run_errors per run (as a run's page reads its errors)."""
        found: dict[int, dict[str, Any]] = {}
        ids = [int(i) for i in dict.fromkeys(run_ids)]
        part = ("SELECT * FROM (SELECT run_id, error_message FROM run_errors WHERE run_id = ?"
                " ORDER BY id LIMIT 1) AS t{n}")
        for start in range(0, len(ids), PIPELINES_PER_QUERY):
            chunk = ids[start : start + PIPELINES_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            for row in self._read(f"SELECT id, exit_code, summary_json FROM runs WHERE id IN ({marks})", chunk):
                found[int(row["id"])] = {**row, "first_error": None}
            sql = " UNION ALL ".join(part.format(n=i) for i in range(len(chunk)))
            for row in self._read(sql, chunk):
                if int(row["run_id"]) in found:
                    found[int(row["run_id"])]["first_error"] = row["error_message"]
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
        slugs = clubs(self.store)
        if not slugs:
            return []
        marks = ", ".join("?" * len(slugs))
        return self._read(
            # LEFT JOIN: the crash rows drive (a range of the index), each one's run is a probe.
            "SELECT r.pipeline, COUNT(*) AS n FROM run_errors e LEFT JOIN runs r ON r.id = e.run_id"
            f" WHERE e.club_slug IN ({marks}) AND e.step_name = ? AND e.created_at >= ? GROUP BY r.pipeline",
            (*slugs, CRASH_STEP, since))

    # -- a pipeline's history --------------------------------------------------------------------------------
    def history(self, pipeline: str, limit: int, before: tuple[str, int] | None = None) -> list[dict[str, Any]]:
        """The pipeline's runs newest first, started before the run `before` = (started_at, id)."""
        return self._read(*history_query(pipeline, limit, before))

    def history_after(self, pipeline: str, limit: int, after: tuple[str, int], outcome: str | None = None,
                      lost: bool = False) -> list[dict[str, Any]]:
        """The pipeline's runs (of one `outcome`, or `lost`) started after the run `after`, oldest first (the page
        before, reversed)."""
        where, params = _run_conditions(pipeline, outcome, None, None, lost)
        return self._read(
            f"SELECT {RUN_LIST_COLUMNS} FROM runs WHERE {' AND '.join(where)} AND started_at >= ?"
            f" AND (started_at > ? OR id > ?) ORDER BY started_at, id LIMIT {int(limit)}",
            (*params, after[0], after[0], after[1]))

    def run_position(self, run_id: int) -> dict[str, Any] | None:
        """A run's pipeline and (started_at, id): where a page of its pipeline's history starts."""
        rows = self._read("SELECT id, pipeline, started_at FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def count_runs(self, pipeline: str, cap: int, outcome: str | None = None, lost: bool = False) -> int:
        """How many runs the pipeline has (of one `outcome`, or `lost`), counting no further than `cap` + 1."""
        # Ordered as the index is: a walk of idx_runs_pipeline_started (or of a pipeline's outcome in
        # idx_runs_pipeline_outcome_started) that stops at the cap, never a table scan.
        where, params = _run_conditions(pipeline, outcome, None, None, lost)
        return int(self._read(f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM runs WHERE {' AND '.join(where)}"
                              f" ORDER BY started_at DESC LIMIT {int(cap) + 1}) AS t", params)[0]["n"])

    def list_runs(self, *, pipeline: str | None = None, outcome: str | None = None, limit: int = 50,
                  before: tuple[str, int] | None = None, since: str | None = None, until: str | None = None,
                  lost: bool = False) -> list[dict[str, Any]]:
        """Runs newest first (the API's /api/runs, the runs page): by pipeline and outcome, or all of them;
        started in [`since`, `until`); with `lost`, only the runs the reaper ended. Each filter has its index:
        a pipeline's runs (of an outcome), every pipeline's runs of an outcome, the lost runs, all runs by start."""
        where, params = _run_conditions(pipeline, outcome, since, until, lost)
        if before is not None:
            where.append("started_at <= ? AND (started_at < ? OR id < ?)")
            params += [before[0], before[0], before[1]]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self._read(f"SELECT {RUN_LIST_COLUMNS} FROM runs{clause} ORDER BY started_at DESC, id DESC"
                          f" LIMIT {int(limit)}", params)

    def outcome_counts(self, since: str, until: str | None, pipeline: str | None, cap: int) -> dict[str, int]:
        """How many runs started in [`since`, `until`) (of one pipeline) ended each way, and how many were lost
        (reaped): each outcome's count stops at `cap` + 1, so a long window costs at most a few thousand index
        entries. One statement: a capped count per outcome, each a range of its index."""
        kinds = [(outcome, outcome, False) for outcome in RUN_OUTCOMES] + [(LOST, None, True)]
        parts, params = [], []
        for i, (name, outcome, lost) in enumerate(kinds):
            where, values = _run_conditions(pipeline, outcome, since, until, lost)
            parts.append(f"SELECT '{name}' AS kind, COUNT(*) AS n FROM (SELECT 1 FROM runs WHERE {' AND '.join(where)}"
                         f" LIMIT {int(cap) + 1}) AS t{i}")
            params += values
        return {row["kind"]: int(row["n"]) for row in self._read(" UNION ALL ".join(parts), params)}

    # -- one run -----------------------------------------------------------------------------------------
    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {RUN_COLUMNS}, output_tail FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        return Runs(self.store).list_steps(run_id)

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


def _run_conditions(pipeline: str | None, outcome: str | None, since: str | None, until: str | None,
                    lost: bool) -> tuple[list[str], list[Any]]:
    """The WHERE conditions (and their values) of runs by pipeline, outcome, start window and lostness."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("pipeline", pipeline), ("outcome", outcome)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if lost:
        where.append("reaped_at IS NOT NULL")
    if since is not None:
        where.append("started_at >= ?")
        params.append(since)
    if until is not None:
        where.append("started_at < ?")
        params.append(until)
    return where, params
