"""Copy the history (runs with their steps and errors) from one database to another: `runtracker migrate`.

Both databases are first brought to the latest schema by `open_store`, so they have the same columns; rows are
copied column by column by name. The whole copy is one transaction on the target: it lands completely or not
at all, and while it runs other writers of the target wait.

Ids: into a target without runs, ids are kept (`runtracker show 42` still shows the same run); into a target
that already has runs (`merge=True`), every copied row gets a new id and steps and errors follow their run.
A merge skips source runs the target already holds (same pipeline, start time, host and pid), so running it
twice copies nothing twice.

The dashboard's users and API keys come along, in the same transaction, with their hashes as they are (argon2
for passwords, SHA-256 for keys): every login and every key works on the target as it did on the source. A user
whose name, or a key whose hash, the target already has is left as the target has it. They get the target's
next ids (nothing that is copied refers to them). Not copied: the dashboard's sessions (everyone logs in once
more on the new database: a cookie made for the old one opens nothing there), the ingest API's idempotency keys
(kept a day), and the monitors' alert tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..base.outcomes import RUNNING
from .base import Store

BATCH = 2000

TARGET_NOT_EMPTY = (
    "the target database already holds {n} runs: use --merge to add the source's runs to them (with new ids),"
    " or choose an empty database"
)


class TargetNotEmpty(Exception):
    pass


@dataclass
class CopyReport:
    runs: int = 0
    steps: int = 0
    errors: int = 0
    ids_kept: bool = True
    already_there: int = 0  # merge: runs the target already held
    orphans: int = 0  # steps or errors whose run is not in the source (a seed database had no enforced keys)
    running: int = 0  # runs copied while still `running` in the source
    users: int = 0
    api_keys: int = 0
    users_there: int = 0  # users whose name the target already had (kept as they were there)
    api_keys_there: int = 0  # API keys whose hash the target already had


def rows(store: Store, table: str) -> Iterator[dict[str, Any]]:
    """Every row of a table in id order, read in batches."""
    last = -1
    while True:
        batch = store.read(f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH))
        if not batch:
            return
        last = batch[-1]["id"]  # before the rows are handed out: the copy takes their ids out
        yield from batch


def copy_history(source: Store, target: Store, *, merge: bool = False) -> CopyReport:
    """Copy every run, step and error of `source` into `target` in one transaction; see the module docstring."""
    report = CopyReport()
    with target.transaction() as cur:
        target.lock_for_copy(cur)
        cur.execute("SELECT COUNT(*) FROM runs")
        present = int(cur.fetchone()[0])
        if present and not merge:
            raise TargetNotEmpty(TARGET_NOT_EMPTY.format(n=present))
        report.ids_kept = present == 0
        known = _run_keys(target, cur) if present else set()
        run_ids = _copy_table(target, cur, rows(source, "runs"), report, "runs", {}, known)
        step_ids = _copy_table(target, cur, rows(source, "run_steps"), report, "steps", run_ids)
        _copy_table(target, cur, rows(source, "run_errors"), report, "errors", run_ids, step_ids=step_ids)
        if report.ids_kept:
            target.reset_ids(cur, ("runs", "run_steps", "run_errors"))
        report.users, report.users_there = _copy_unique(target, cur, rows(source, "users"), "users", "name")
        report.api_keys, report.api_keys_there = _copy_unique(target, cur, rows(source, "api_keys"), "api_keys",
                                                              "key_hash")
    return report


def _copy_unique(target: Store, cur: Any, source_rows: Iterator[dict[str, Any]], table: str,
                 unique: str) -> tuple[int, int]:
    """Insert users or API keys with new ids, each unless the target has its `unique` value already; (copied,
    already there). One statement per row: they are few."""
    copied = there = 0
    for row in source_rows:
        row.pop("id")
        columns = list(row)
        cur.execute(target.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                               f" ON CONFLICT ({unique}) DO NOTHING"), tuple(row.values()))
        if cur.rowcount == 1:
            copied += 1
        else:
            there += 1
    return copied, there


def _key(run: dict[str, Any]) -> tuple[Any, ...]:
    return run["pipeline"], run["started_at"], run["hostname"], run["pid"]


def _run_keys(target: Store, cur: Any) -> set[tuple[Any, ...]]:
    cur.execute("SELECT pipeline, started_at, hostname, pid FROM runs")
    return {tuple(row) for row in cur.fetchall()}


def _copy_table(target: Store, cur: Any, source_rows: Iterator[dict[str, Any]], report: CopyReport, kind: str,
                run_ids: dict[int, int], known: set[tuple[Any, ...]] | None = None,
                step_ids: dict[int, int] | None = None) -> dict[int, int]:
    """Insert rows (runs, steps or errors); returns {source id: target id}, -1 for runs already there."""
    table = {"runs": "runs", "steps": "run_steps", "errors": "run_errors"}[kind]
    copied: dict[int, int] = {}
    pending: list[tuple[Any, ...]] = []
    sql = ""
    for row in source_rows:
        if kind == "runs":
            if known and _key(row) in known:
                report.already_there += 1
                copied[row["id"]] = -1  # its steps and errors are in the target already
                continue
            report.running += row["outcome"] == RUNNING
        else:
            if run_ids.get(row["run_id"], -1) < 0:
                report.orphans += row["run_id"] not in run_ids
                continue
            row["run_id"] = run_ids[row["run_id"]]
            if step_ids is not None and row.get("run_step_id") is not None:
                row["run_step_id"] = step_ids.get(row["run_step_id"])
        old_id = row.pop("id")
        columns = (["id"] if report.ids_kept else []) + list(row)
        values = ([old_id] if report.ids_kept else []) + list(row.values())
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        if report.ids_kept or kind == "errors":
            if kind != "errors":
                copied[old_id] = old_id
            pending.append(tuple(values))
            if len(pending) >= BATCH:
                cur.executemany(target.sql(sql), pending)
                pending.clear()
        else:
            # New ids are needed to relink children: one insert per run or step, in the same transaction.
            copied[old_id] = target.insert_returning_id(cur, sql, values)
        setattr(report, kind, getattr(report, kind) + 1)
    if pending:
        cur.executemany(target.sql(sql), pending)
    return copied
