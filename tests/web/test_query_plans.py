"""The dashboard's main queries use the indexes made for them, on both backends: checked with EXPLAIN.

Every query a page runs is captured (a spy on the store's `read`, where every query of `Dashboard` and
`ErrorSearch` runs) and explained on a history of 50,000 runs and errors, ANALYZEd: no table scan of `runs` or
`run_errors` (SQLite: SCAN without an index; PostgreSQL: Seq Scan), and the index we expect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from webdata import add_run

from runtracker.base.clock import iso, now_ms
from runtracker.storage.dashboard import RUN_BAR_COLUMNS, Dashboard
from runtracker.storage.errorfilter import ErrorFilter
from runtracker.storage.search import ErrorCursor, ErrorSearch

PIPELINES = ["laposta", "nikki"]
SINCE = "2026-01-20T00:00:00.000Z"  # within the history below (2026-01-01 and 50,000 minutes on)
UNTIL = "2026-01-25T00:00:00.000Z"


def _calls(dash: Dashboard, search: ErrorSearch) -> dict[str, tuple[Callable[[], Any], str | None]]:
    """What the pages ask, and the index (by its name's start) each must use; None: any index, no table scan."""
    pipeline_cursor = ErrorCursor(run_started_at=SINCE, run_id=20_000, error_id=20_000)
    time_cursor = ErrorCursor(created_at=SINCE, error_id=20_000)
    return {
        "pipeline names": (dash.pipeline_names, "idx_runs_pipeline"),
        "running runs": (dash.running_runs, ("idx_runs_running", "idx_runs_lock")),  # both: running runs only
        "running run of a pipeline": (lambda: dash.running_run("nikki"), "idx_runs_pipeline_outcome_started"),
        "latest runs": (lambda: dash.latest_runs(PIPELINES, 30, columns=RUN_BAR_COLUMNS), "idx_runs_pipeline"),
        "last success": (lambda: dash.latest_runs(PIPELINES, 1, outcome="success"),
                         "idx_runs_pipeline_outcome_started"),
        "usual durations": (lambda: dash.successful_durations("nikki", 30, SINCE), "idx_runs_pipeline_outcome"),
        "history page 1": (lambda: dash.history("nikki", 21), "idx_runs_pipeline_started"),
        "history deep page": (lambda: dash.history("nikki", 21, (SINCE, 20_000)), "idx_runs_pipeline_started"),
        "runs count": (lambda: dash.count_runs("nikki", 1000), "idx_runs_pipeline"),
        "api runs": (lambda: dash.list_runs(limit=51, before=(SINCE, 20_000)), "idx_runs_started"),
        "runs page": (lambda: dash.list_runs(since=SINCE, limit=51, before=(UNTIL, 20_000)), "idx_runs_started"),
        "runs page by outcome": (lambda: dash.list_runs(outcome="failure", since=SINCE, until=UNTIL, limit=51),
                                 "idx_runs_outcome_started"),
        "runs page, lost ones": (lambda: dash.list_runs(lost=True, since=SINCE, limit=51), "idx_runs_reaped_started"),
        "runs page by pipeline and outcome": (lambda: dash.list_runs(pipeline="nikki", outcome="partial",
                                                                     since=SINCE, limit=51),
                                              "idx_runs_pipeline_outcome_started"),
        "runs page counts": (lambda: dash.outcome_counts(SINCE, UNTIL, None, 1000), "idx_runs_outcome_started"),
        "runs page counts of a pipeline": (lambda: dash.outcome_counts(SINCE, None, "nikki", 1000),
                                           "idx_runs_pipeline_outcome_started"),
        "history of one outcome": (lambda: dash.list_runs(pipeline="nikki", outcome="failure", limit=101,
                                                          before=(SINCE, 20_000)), "idx_runs_pipeline_outcome_started"),
        "history of one outcome, newer page": (lambda: dash.history_after("nikki", 21, (SINCE, 20_000), "failure"),
                                               "idx_runs_pipeline_outcome_started"),
        "history of lost runs": (lambda: dash.list_runs(pipeline="nikki", lost=True, limit=101),
                                 "idx_runs_pipeline_reaped_started"),
        "lost runs count": (lambda: dash.count_runs("nikki", 1000, lost=True), "idx_runs_pipeline_reaped_started"),
        "runs count of one outcome": (lambda: dash.count_runs("nikki", 1000, "failure"),
                                      "idx_runs_pipeline_outcome_started"),
        "run": (lambda: dash.run(1), None),
        "run errors": (lambda: dash.run_errors(1, 101, 5), "idx_run_errors_run_id"),
        "crash rows": (lambda: dash.crash_rows(1), "idx_run_errors_run_id"),
        "why runs failed (overview)": (lambda: dash.why_failed([6, 12, 18]), None),
        "errors": (lambda: search.errors(ErrorFilter(), 50, time_cursor), "idx_run_errors_created"),
        "errors by date": (lambda: search.errors(ErrorFilter(since=SINCE, until="2026-01-21"), 50),
                           "idx_run_errors_created"),
        "errors by member": (lambda: search.errors(ErrorFilter(member="KNVB1"), 50, time_cursor),
                             "idx_run_errors_member"),
        "errors by step": (lambda: search.errors(ErrorFilter(step="sync"), 50), "idx_run_errors_club_step"),
        "errors by pipeline": (lambda: search.errors(ErrorFilter(pipeline="nikki"), 50, pipeline_cursor),
                               "idx_runs_pipeline_started"),
        "errors by text": (lambda: search.errors(ErrorFilter(text="needle"), 50), "idx_run_errors_created"),
        "error count": (lambda: search.count_errors(ErrorFilter(), 1000), "idx_run_errors_created"),
        "group window": (lambda: search.error_window(ErrorFilter(), 5000), "idx_run_errors_created"),
        "group window's ids": (lambda: search.error_window_ids(ErrorFilter(), 5000), "idx_run_errors_created"),
        "group window's ids by pipeline": (lambda: search.error_window_ids(ErrorFilter(pipeline="nikki"), 2000),
                                           "idx_runs_pipeline_started"),
        "errors by id": (lambda: search.errors_by_id(list(range(1, 600, 3))), None),
        "runs by outcome (metrics)": (lambda: dash.outcome_counts_since(iso(now_ms() - 86_400_000)), "idx_runs_"),
        "crashes (metrics)": (lambda: dash.crashes_since(SINCE), "idx_run_errors_club_step"),
    }


# Where PostgreSQL's planner, by its statistics, serves a query as well from another index (a walk of a
# pipeline's runs by start that skips the few unsuccessful ones; the partial index of running runs).
PG_ALSO = {
    "idx_runs_pipeline_outcome_started": ("idx_runs_pipeline_started", "idx_runs_lock", "idx_runs_running"),
    "idx_runs_pipeline_outcome": ("idx_runs_pipeline_started",),
    "idx_run_errors_club_step": ("idx_run_errors_created",),  # a step with most of the errors: walk them all
    # A window of a few days: walking its runs by start, skipping the other outcomes, is as cheap.
    "idx_runs_outcome_started": ("idx_runs_started",),
    # Both hold the lost runs only (a few): either is a short walk.
    "idx_runs_pipeline_reaped_started": ("idx_runs_reaped_started",),
}


def _names(expected: str | tuple[str, ...], pg: bool = False) -> tuple[str, ...]:
    names = expected if isinstance(expected, tuple) else (expected,)
    return names + tuple(n for name in names for n in PG_ALSO.get(name, ())) if pg else names


HISTORY_RUNS = 50_000


def _history(store) -> None:
    """50,000 runs of four pipelines (nikki one in 40), mostly successful, each with an error; then ANALYZE: the
    planners judge by statistics, as they would on a real history (on a few rows, scanning the table is rightly
    cheaper; and for a pipeline with a quarter of all runs, walking every run by time is as good)."""
    if store.dialect == "postgresql":
        series = f"generate_series(1, {HISTORY_RUNS}) AS s(i)"
        start = ("to_char(timestamp '2026-01-01' + i * interval '1 minute',"
                 " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
    else:
        series = (f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {HISTORY_RUNS})"
                  " SELECT i FROM s)")
        start = "strftime('%Y-%m-%dT%H:%M:%S.000Z', 1767225600 + i * 60, 'unixepoch')"
    with store.transaction() as cur:
        cur.execute(f"INSERT INTO runs (pipeline, started_at, outcome, duration_ms) SELECT"
                    f" CASE WHEN i % 40 = 0 THEN 'nikki' WHEN i % 3 = 0 THEN 'laposta' WHEN i % 3 = 1 THEN 'freescout'"
                    f" ELSE 'backup' END,"
                    f" {start}, CASE WHEN i % 6 = 0 THEN 'failure' WHEN i % 6 = 1 THEN 'partial' ELSE 'success' END,"
                    f" 60000 FROM {series}")
        cur.execute("INSERT INTO run_errors (run_id, step_name, member_identifier, error_message, created_at)"
                    " SELECT id, CASE WHEN id % 10 = 0 THEN 'download' ELSE 'sync' END, 'KNVB' || (id % 5000),"
                    " 'member not found', started_at FROM runs")
        cur.execute("ANALYZE runs")  # these two tables only (a bare ANALYZE reads every schema)
        cur.execute("ANALYZE run_errors")


def _sqlite_problems(store, sql, params, expected):
    plan = [row["detail"] for row in store.read("EXPLAIN QUERY PLAN " + sql, params)]
    text = " | ".join(plan)
    scans = [d for d in plan if re.match(r"SCAN (runs|run_errors|e|r|x)\b(?! USING)", d)]
    if scans:
        return f"table scan: {text}"
    if expected and not any(name in text for name in _names(expected)):
        return f"does not use {expected}: {text}"
    return None


def _pg_problems(store, sql, params, expected):
    with store.transaction() as cur:
        cur.execute("EXPLAIN (FORMAT JSON) " + store.sql(sql), params)
        plan = cur.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    nodes, indexes = [], []

    def walk(node):
        nodes.append((node.get("Node Type"), node.get("Relation Name")))
        if "Index Name" in node:
            indexes.append(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    scans = [rel for kind, rel in nodes if kind == "Seq Scan" and rel in ("runs", "run_errors")]
    if scans:
        return f"Seq Scan of {scans}: {nodes}"
    if expected and not any(name.startswith(_names(expected, pg=True)) for name in indexes):
        return f"does not use {expected}: {indexes}"
    return None


def test_every_main_query_uses_its_index(app, monkeypatch):
    """Each query behind the overview, history, run, error browser (every mode), member page and metrics."""
    store = app.state.web.store
    for minute in range(30):
        add_run(store, PIPELINES[minute % 2], minute, outcome=("success", "failure")[minute % 3 == 0],
                errors=[("sync", f"KNVB{minute % 4}", f"member {minute} not found"), ("crash", None, "boom")])
    _history(store)
    # Windows in proportion to a real history (20,000 of 5,000,000 errors), not 40 % of this one.
    monkeypatch.setattr(ErrorSearch, "ERROR_WINDOW", 500)
    monkeypatch.setattr(ErrorSearch, "RUN_WINDOW", 200)
    captured: list[tuple[str, tuple[Any, ...]]] = []
    original = store.read

    def spy(sql, params=()):
        captured.append((sql, tuple(params)))
        return original(sql, params)

    explain = _pg_problems if store.dialect == "postgresql" else _sqlite_problems
    problems = {}
    for name, (call, expected) in _calls(app.state.web.dash, app.state.web.search).items():
        captured.clear()
        with monkeypatch.context() as spying:
            spying.setattr(store, "read", spy)
            call()
        assert captured, name
        # The page's own query is the last one; the ones before it (a window's end, the clubs) are probes.
        for i, (sql, params) in enumerate(captured):
            problem = explain(store, sql, params, expected if i == len(captured) - 1 else None)
            if problem:
                problems[f"{name} #{i}"] = problem
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
