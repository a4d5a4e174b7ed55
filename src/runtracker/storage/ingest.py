"""The ingest API's reads and writes on one store (docs/ingest.md): the facts a request about a run or step is
checked against, ping runs, and idempotency keys. Its API keys and what they may write are `auth.Auth`.

The runs, steps and errors themselves are written by `runtracker.core.lifecycle` and `runs.Runs`, as the Python
API writes them: nothing here writes to `runs`, `run_steps` or `run_errors`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .base import Store

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

# How an API key is named as the owner of the runs it opens (`runs.process_key`); a ping run adds PING.
OWNER_PREFIX = "api-key:"
PING = ":ping"

# What `Ingest.once` found for an idempotency key.
CLAIMED = "claimed"  # new (or abandoned): the request was handled now
DONE = "done"  # handled before: give its response again
BUSY = "busy"  # an older server's claim, still being handled (or its server died less than a minute ago)
MISMATCH = "mismatch"  # the key was used for another request


def owner_of(key_id: int) -> str:
    """`runs.process_key` of a run opened through the ingest API by this key."""
    return f"{OWNER_PREFIX}{key_id}"


def owned_by(process_key: object, key_id: int) -> bool:
    """Whether a run's `process_key` names this API key as its owner (a run or a ping run)."""
    owner = owner_of(key_id)
    return process_key == owner or process_key == owner + PING


class Ingest:
    """The ingest API's queries on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- what a request is checked against ----------------------------------------------------------------
    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self.store.read("SELECT id, pipeline, club_slug, started_at, outcome, ended_by, process_key"
                               " FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def step(self, step_id: int) -> dict[str, Any] | None:
        rows = self.store.read("SELECT id, run_id, step_name, started_at, finished_at FROM run_steps WHERE id = ?",
                               (step_id,))
        return rows[0] if rows else None

    def step_in_progress(self, run_id: int) -> str | None:
        """The name of the run's latest step still open (where an error without a step goes, as in Python)."""
        rows = self.store.read("SELECT step_name FROM run_steps WHERE run_id = ? AND finished_at IS NULL"
                               " ORDER BY id DESC LIMIT 1", (run_id,))
        return str(rows[0]["step_name"]) if rows else None

    def ping_runs(self, pipeline: str, key_id: int) -> list[int]:
        """The `running` ping runs of a pipeline opened by this key, newest first (a probe of idx_runs_pipeline_
        outcome_started)."""
        rows = self.store.read("SELECT id FROM runs WHERE pipeline = ? AND outcome = 'running' AND process_key = ?"
                               " ORDER BY started_at DESC, id DESC", (pipeline, owner_of(key_id) + PING))
        return [int(row["id"]) for row in rows]

    # -- idempotency keys -----------------------------------------------------------------------------------
    def once(self, handle: Callable[[], tuple[int, dict[str, Any]]], key_id: int, idempotency_key: str,
             request_hash: str, now: str, abandoned_before: str) -> tuple[str, dict[str, Any] | None]:
        """Handle a request at most once per idempotency key, in one transaction: claim the key, `handle()` (the
        request's writes: every store call in it joins this transaction), and keep its response for retries.

        Returns (CLAIMED, the response) when it was handled now; (DONE, the stored response) when it was
        handled before; (MISMATCH, None) when the key was used for another request; (BUSY, None) when a claim
        without a response holds it — only a server before this version leaves one, between its claim's commit
        and its response's. If `handle` raises, nothing of the request is kept, nor the claim: the claim, the
        write and the response commit together or not at all, so no crash between them can record a request
        whose retry records it again.

        A request with the same key arriving meanwhile waits for this transaction — on the store's lock in this
        process; in another process on SQLite's write lock, or on PostgreSQL's unique index, which makes the
        second INSERT wait for the first's commit — and then finds DONE.
        """
        with self.store.transaction() as cur:
            found, stored = self._claim(cur, key_id, idempotency_key, request_hash, now, abandoned_before)
            if found != CLAIMED:
                return found, stored
            status, body = handle()
            cur.execute(self.store.sql("UPDATE api_idempotency SET status = ?, response = ? WHERE key_id = ?"
                                       " AND idempotency_key = ?"),
                        (status, json.dumps(body), key_id, idempotency_key))
            return CLAIMED, {"status": status, "body": body}

    def atomically(self, handle: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        """`handle()` as one transaction (a request without an idempotency key): all its writes or none."""
        with self.store.transaction():
            return handle()

    def _claim(self, cur: Any, key_id: int, idempotency_key: str, request_hash: str, now: str,
               abandoned_before: str) -> tuple[str, dict[str, Any] | None]:
        cur.execute(self.store.sql(
            "INSERT INTO api_idempotency (key_id, idempotency_key, request_hash, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING key_id"), (key_id, idempotency_key, request_hash, now))
        if cur.fetchone() is not None:
            return CLAIMED, None
        cur.execute(self.store.sql("SELECT request_hash, status, response, created_at FROM api_idempotency"
                                   " WHERE key_id = ? AND idempotency_key = ?"), (key_id, idempotency_key))
        row = cur.fetchone()
        if row is None:  # pruned between the two statements: a conflict no longer
            return BUSY, None
        stored_hash, status, response, created_at = row
        if stored_hash != request_hash:
            return MISMATCH, None
        if status is not None:
            return DONE, {"status": int(status), "body": json.loads(response)}
        if str(created_at) >= abandoned_before:
            return BUSY, None
        # A claim left by an older server that died while handling it. Compare-and-set on its time: of two
        # retries taking it over, one wins.
        cur.execute(self.store.sql("UPDATE api_idempotency SET created_at = ? WHERE key_id = ?"
                                   " AND idempotency_key = ? AND status IS NULL AND created_at = ?"),
                    (now, key_id, idempotency_key, created_at))
        return (CLAIMED if cur.rowcount else BUSY), None

    def prune(self, before: str) -> int:
        """Forget idempotency keys used before `before` (one probe of idx_api_idempotency_created)."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM api_idempotency WHERE created_at < ?"), (before,))
            return int(cur.rowcount or 0)
