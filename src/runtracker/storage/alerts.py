"""The monitor's queries: which runs ended, each pipeline's latest start, and the alert tables (migration 9).

Exactly once, whichever monitor and however often it restarts:

- An event is a row of `alerts` whose `event_key` is unique (`failed:run:42`). `raise_alert` inserts it with
  ON CONFLICT DO NOTHING together with its deliveries and the pipeline's state change, in one transaction: the
  monitor whose insert wins owns the alert; the other gets nothing and does nothing.
- An overdue pipeline is alerted again only after the cooldown: a compare-and-set on `alert_pipelines`
  (`claim_overdue`), inside the same transaction as the alert's insert. Two monitors racing: the second's
  UPDATE waits for the first's commit (PostgreSQL re-reads the row; SQLite serialises writers) and matches
  nothing.
- A delivery is sent by the monitor that claims it: a compare-and-set on its status and attempts (`claim`).

Every pass of the monitor is a handful of index probes, whatever the history: runs past a mark by primary key,
`running` runs by idx_runs_running, each scheduled pipeline's latest start by idx_runs_pipeline_started (one
statement for all of them), due deliveries by idx_alert_deliveries_due.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..base.records import Record
from .base import Store

# A run as the monitor judges its end.
RUN_FIELDS = "id, pipeline, outcome, started_at, finished_at, duration_ms, summary_json, reap_reason, exit_code"

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


class NewAlert(Record):
    """An event to tell people about: its unique key, what it is, and the message (title and body)."""

    __slots__ = ("event_key", "event", "pipeline", "run_id", "title", "body")

    def __init__(self, event_key: str, event: str, pipeline: str, run_id: int | None, title: str,
                 body: str) -> None:
        self.event_key = event_key
        self.event = event  # base/events.EVENTS
        self.pipeline = pipeline
        self.run_id = run_id
        self.title = title
        self.body = body


class AlertStore:
    """The monitor's reads and writes on one store (one transaction per method, as every store call)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- runs ----------------------------------------------------------------------------------------------
    def runs_after(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Runs with an id above `after_id`, oldest first (a range of the primary key)."""
        return self.store.read(f"SELECT {RUN_FIELDS} FROM runs WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))

    def runs_by_id(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self.store.read(f"SELECT {RUN_FIELDS} FROM runs WHERE id IN ({marks}) ORDER BY id", tuple(ids))

    def last_run_id(self) -> int:
        return int(self.store.read("SELECT COALESCE(MAX(id), 0) AS n FROM runs")[0]["n"])

    def latest_starts(self, pipelines: Sequence[str]) -> dict[str, str | None]:
        """Each pipeline's latest `started_at`: one probe of idx_runs_pipeline_started per name, one statement."""
        if not pipelines:
            return {}
        values = ", ".join(["(?)"] * len(pipelines))
        rows = self.store.read(
            f"WITH p(name) AS (VALUES {values}) SELECT name, (SELECT MAX(started_at) FROM runs"
            " WHERE runs.pipeline = p.name) AS latest FROM p", tuple(pipelines))
        return {row["name"]: row["latest"] for row in rows}

    def first_errors(self, run_id: int, limit: int) -> list[dict[str, Any]]:
        """The run's first error rows (the crash row included), for an alert's message."""
        return self.store.read("SELECT step_name, member_identifier, error_message FROM run_errors WHERE run_id = ?"
                               " ORDER BY id LIMIT ?", (run_id, limit))

    def crash_row(self, run_id: int) -> dict[str, Any] | None:
        rows = self.store.read("SELECT error_message FROM run_errors WHERE run_id = ? AND step_name = 'crash'"
                               " ORDER BY id LIMIT 1", (run_id,))
        return rows[0] if rows else None

    # -- marks ---------------------------------------------------------------------------------------------
    def mark(self, name: str) -> int | None:
        rows = self.store.read("SELECT value FROM alert_marks WHERE name = ?", (name,))
        return int(rows[0]["value"]) if rows else None

    def advance_mark(self, name: str, value: int) -> None:
        """Set a mark, never backwards (two monitors each advance it past what they have looked at)."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql(
                "INSERT INTO alert_marks (name, value) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET value = excluded.value WHERE alert_marks.value < excluded.value"), (name, value))

    # -- pipelines -----------------------------------------------------------------------------------------
    def pipeline_states(self, pipelines: Sequence[str], at: str) -> dict[str, dict[str, Any]]:
        """Each pipeline's alert state; a pipeline seen for the first time is watched from `at` on."""
        if not pipelines:
            return {}
        marks = ", ".join("?" * len(pipelines))
        sql = f"SELECT * FROM alert_pipelines WHERE pipeline IN ({marks})"
        rows = {row["pipeline"]: row for row in self.store.read(sql, tuple(pipelines))}
        missing = [p for p in pipelines if p not in rows]
        if missing:
            with self.store.transaction() as cur:
                for pipeline in missing:
                    self._ensure_pipeline(cur, pipeline, at)
            rows.update({row["pipeline"]: row for row in self.store.read(sql, tuple(pipelines))})
        return rows

    def watched_since(self, pipelines: Sequence[str]) -> dict[str, str]:
        """When a monitor first watched each pipeline (read only: the dashboard's view)."""
        if not pipelines:
            return {}
        marks = ", ".join("?" * len(pipelines))
        rows = self.store.read(f"SELECT pipeline, watched_since FROM alert_pipelines WHERE pipeline IN ({marks})",
                               tuple(pipelines))
        return {row["pipeline"]: row["watched_since"] for row in rows}

    def _ensure_pipeline(self, cur: Any, pipeline: str, at: str) -> None:
        cur.execute(self.store.sql("INSERT INTO alert_pipelines (pipeline, watched_since) VALUES (?, ?)"
                                   " ON CONFLICT (pipeline) DO NOTHING"), (pipeline, at))

    # -- raising alerts ------------------------------------------------------------------------------------
    def raise_alert(self, alert: NewAlert, channels: Sequence[str], at: str, by: str, *,
                    recover_from: str | None = None, overdue: tuple[str, str] | None = None,
                    recovered: bool = False) -> int | None:
        """Insert an alert and its deliveries, once: None if its key exists (another monitor, or this one before
        a restart, raised it) or the state change it depends on was made by another monitor first.

        `recover_from`: a success after it is `recovered` (a failure's alert). `overdue`: (missed time, the
        alerted-at before which a repeat is allowed): the cooldown's compare-and-set; the key gets the repeat's
        number. `recovered`: only if the pipeline still has something to recover from (then cleared)."""
        with self.store.transaction() as cur:
            self._ensure_pipeline(cur, alert.pipeline, at)
            key = alert.event_key
            if overdue is not None:
                since, repeat_before = overdue
                cur.execute(self.store.sql(
                    "UPDATE alert_pipelines SET overdue_alerts = CASE WHEN overdue_since = ? THEN overdue_alerts + 1"
                    " ELSE 1 END, overdue_since = ?, overdue_alerted_at = ?,"
                    " recover_from = COALESCE(recover_from, 'overdue')"
                    " WHERE pipeline = ? AND (overdue_since IS NULL OR overdue_since <> ? OR overdue_alerted_at <= ?)"
                    " RETURNING overdue_alerts"), (since, since, at, alert.pipeline, since, repeat_before))
                row = cur.fetchone()
                if row is None:
                    return None  # alerted within the cooldown (by us before a restart, or by another monitor)
                if int(row[0]) > 1:
                    key = f"{key}:repeat:{int(row[0]) - 1}"
            if recovered:
                cur.execute(self.store.sql("UPDATE alert_pipelines SET recover_from = NULL WHERE pipeline = ?"
                                           " AND recover_from IS NOT NULL RETURNING recover_from"), (alert.pipeline,))
                if cur.fetchone() is None:
                    return None
            alert_id = self._insert_alert(cur, alert, key, at, by)
            if alert_id is None:
                return None
            if recover_from is not None:
                cur.execute(self.store.sql("UPDATE alert_pipelines SET recover_from = ? WHERE pipeline = ?"),
                            (recover_from, alert.pipeline))
            for channel in channels:
                cur.execute(self.store.sql(
                    "INSERT INTO alert_deliveries (alert_id, channel, status, attempts, next_attempt_at)"
                    " VALUES (?, ?, 'pending', 0, ?)"), (alert_id, channel, at))
            return alert_id

    def _insert_alert(self, cur: Any, alert: NewAlert, key: str, at: str, by: str) -> int | None:
        cur.execute(self.store.sql(
            "INSERT INTO alerts (event_key, event, pipeline, run_id, title, body, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING RETURNING id"),
            (key, alert.event, alert.pipeline, alert.run_id, alert.title, alert.body, at, by))
        row = cur.fetchone()
        return None if row is None else int(row[0])

    # -- deliveries ----------------------------------------------------------------------------------------
    def due_deliveries(self, channel: str, at: str, limit: int = 10) -> list[dict[str, Any]]:
        """Deliveries of `channel` whose time has come: pending ones, and claims whose monitor went away."""
        return self.store.read(
            "SELECT d.id, d.alert_id, d.channel, d.status, d.attempts, a.title, a.body, a.event_key, a.event"
            " FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.channel = ? AND d.status IN ('pending', 'sending') AND d.next_attempt_at <= ?"
            " ORDER BY d.next_attempt_at, d.id LIMIT ?", (channel, at, limit))

    def claim(self, delivery: dict[str, Any], by: str, until: str) -> bool:
        """Take a delivery for sending until `until`: compare-and-set on the status and attempts read, so that of
        two monitors exactly one sends it. False: another took it first."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql(
                "UPDATE alert_deliveries SET status = 'sending', attempts = attempts + 1, claimed_by = ?,"
                " next_attempt_at = ? WHERE id = ? AND status = ? AND attempts = ?"),
                (by, until, delivery["id"], delivery["status"], delivery["attempts"]))
            return cur.rowcount == 1

    def finish_delivery(self, delivery_id: int, by: str, status: str, *, at: str, error: str | None = None,
                        next_attempt_at: str | None = None) -> bool:
        """Record a claimed delivery's outcome: `sent`, `failed` (no more attempts), or `pending` again at
        `next_attempt_at`. Only by the monitor that holds the claim."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql(
                "UPDATE alert_deliveries SET status = ?, last_error = COALESCE(?, last_error),"
                " sent_at = COALESCE(?, sent_at), next_attempt_at = COALESCE(?, next_attempt_at)"
                " WHERE id = ? AND status = 'sending' AND claimed_by = ?"),
                (status, error, at if status == SENT else None, next_attempt_at, delivery_id, by))
            return cur.rowcount == 1

    # -- reading back (the CLI, tests) --------------------------------------------------------------------
    def alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.read("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))

    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        if alert_id is None:
            return self.store.read("SELECT * FROM alert_deliveries ORDER BY id")
        return self.store.read("SELECT * FROM alert_deliveries WHERE alert_id = ? ORDER BY id", (alert_id,))


# -- the alert history (the dashboard's /alerts, a pipeline's recent alerts, GET /api/alerts) ---------------------
# A delivery as people read it: sent; being sent (not tried yet, or its first try under way); retrying (a try
# failed, another is due); failed (given up after the last try). An alert routed to no channel has no delivery.
DELIVERED, IN_PROGRESS, RETRYING, GAVE_UP, NO_CHANNEL = "delivered", "sending", "retrying", "failed", "no channel"
DELIVERY_STATES = (DELIVERED, IN_PROGRESS, RETRYING, GAVE_UP, NO_CHANNEL)
_STATE_SQL = {
    DELIVERED: "d.status = 'sent'",
    IN_PROGRESS: "d.status IN ('pending', 'sending') AND d.last_error IS NULL",
    RETRYING: "d.status IN ('pending', 'sending') AND d.last_error IS NOT NULL",
    GAVE_UP: "d.status = 'failed'",
}
ALERT_FIELDS = "a.id, a.event, a.event_key, a.pipeline, a.run_id, a.title, a.created_at"
DELIVERY_FIELDS = "id, alert_id, channel, status, attempts, next_attempt_at, last_error, sent_at"


def delivery_state(delivery: dict[str, Any]) -> str:
    """The state a delivery row is in (DELIVERY_STATES), as `_STATE_SQL` selects it."""
    if delivery["status"] == SENT:
        return DELIVERED
    if delivery["status"] == FAILED:
        return GAVE_UP
    return RETRYING if delivery.get("last_error") is not None else IN_PROGRESS


def alert_state(deliveries: Sequence[dict[str, Any]]) -> str:
    """An alert's state from its deliveries' (each with its `state`): the worst of them — failed, retrying, sending,
    delivered — or `no channel`."""
    states = {d["state"] for d in deliveries}
    return next((s for s in (GAVE_UP, RETRYING, IN_PROGRESS, DELIVERED) if s in states), NO_CHANNEL)


class AlertHistory:
    """The alerts raised, newest first, each with its deliveries: what people were told, through which channel, and
    whether it arrived. Alerts are few (one per event, never deleted by retention): a page walks `alerts` down its
    primary key from a keyset cursor, its filters checked row by row, and reads its deliveries by
    (alert_id, channel)'s unique index."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def page(self, limit: int, *, before: int | None = None, pipeline: str | None = None, state: str | None = None,
             event: str | None = None) -> list[dict[str, Any]]:
        """Up to `limit` alerts with an id below `before` (newest first), of `pipeline`, of the `event` kind, with a
        delivery in `state` (DELIVERY_STATES; `no channel`: with none); each with `deliveries` (each with its
        `state`) and `state` (`alert_state`)."""
        where: list[str] = []
        params: list[Any] = []
        if before is not None:
            where.append("a.id < ?")
            params.append(before)
        if pipeline is not None:
            where.append("a.pipeline = ?")
            params.append(pipeline)
        if event is not None:
            where.append("a.event = ?")
            params.append(event)
        if state == NO_CHANNEL:
            where.append("NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.id)")
        elif state == DELIVERED:  # most alerts: the first ones walked match, one probe each
            where.append(f"EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.id AND {_STATE_SQL[state]})")
        elif state is not None:
            # Few deliveries are not delivered: their alerts' ids are read in one pass over the deliveries, rather
            # than one probe per alert walked down to the few that match.
            where.append(f"a.id IN (SELECT d.alert_id FROM alert_deliveries d WHERE {_STATE_SQL[state]})")
        sql = f"SELECT {ALERT_FIELDS} FROM alerts a"
        if where:
            sql += " WHERE " + " AND ".join(where)
        alerts = self.store.read(sql + " ORDER BY a.id DESC LIMIT ?", (*params, limit))
        by_alert: dict[int, list[dict[str, Any]]] = {int(a["id"]): [] for a in alerts}
        if by_alert:
            marks = ", ".join("?" * len(by_alert))
            for row in self.store.read(f"SELECT {DELIVERY_FIELDS} FROM alert_deliveries WHERE alert_id IN ({marks})"
                                       " ORDER BY alert_id, id", tuple(by_alert)):
                row["state"] = delivery_state(row)
                by_alert[int(row["alert_id"])].append(row)
        for alert in alerts:
            alert["deliveries"] = by_alert[int(alert["id"])]
            alert["state"] = alert_state(alert["deliveries"])
        return alerts
