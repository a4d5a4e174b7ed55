"""The original Node.js tool, as far as the database sees it: its schema, its tracker's statements and its
dashboard's queries, reproduced in SQL from Python. Its tracker names only its own columns in its INSERTs (no
club_slug: the column's DEFAULT 'rondo' fills it in), and its dashboard filters every table on club_slug.

Also the schema of runtracker before version 6 (`runtracker_v5`), to test the upgrade of such databases.
"""

from __future__ import annotations

from typing import Any

from runtracker.storage import Store, schema

CLUB = "rondo"

# The original's CREATE statements (better-sqlite3, SQLite).
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  club_slug TEXT NOT NULL DEFAULT 'rondo',
  pipeline TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  duration_ms INTEGER,
  outcome TEXT NOT NULL CHECK(outcome IN ('success', 'failure', 'running', 'partial')),
  total_created INTEGER DEFAULT 0,
  total_updated INTEGER DEFAULT 0,
  total_skipped INTEGER DEFAULT 0,
  total_failed INTEGER DEFAULT 0,
  summary_json TEXT
);
CREATE TABLE IF NOT EXISTS run_steps (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  club_slug TEXT NOT NULL DEFAULT 'rondo',
  step_name TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  duration_ms INTEGER,
  outcome TEXT CHECK(outcome IN ('success', 'failure', 'skipped', 'partial')),
  created_count INTEGER DEFAULT 0,
  updated_count INTEGER DEFAULT 0,
  skipped_count INTEGER DEFAULT 0,
  failed_count INTEGER DEFAULT 0,
  detail_json TEXT
);
CREATE TABLE IF NOT EXISTS run_errors (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  run_step_id INTEGER REFERENCES run_steps(id),
  club_slug TEXT NOT NULL DEFAULT 'rondo',
  step_name TEXT NOT NULL,
  member_identifier TEXT,
  error_message TEXT NOT NULL,
  error_stack TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_runs_club_pipeline ON runs(club_slug, pipeline, started_at);
CREATE INDEX IF NOT EXISTS idx_run_steps_run_id ON run_steps(run_id);
CREATE INDEX IF NOT EXISTS idx_run_errors_run_id ON run_errors(run_id);
CREATE INDEX IF NOT EXISTS idx_run_errors_club_step ON run_errors(club_slug, step_name, created_at);
"""

# Its RunTracker's statements, with `?` placeholders (a store's `sql()` rewrites them for PostgreSQL).
START_RUN = "INSERT INTO runs (pipeline, started_at, outcome) VALUES (?, ?, 'running') RETURNING id"
START_STEP = "INSERT INTO run_steps (run_id, step_name, started_at) VALUES (?, ?, ?) RETURNING id"
END_STEP = ("UPDATE run_steps SET finished_at = ?, duration_ms = ?, outcome = ?, created_count = ?, updated_count = ?,"
            " skipped_count = ?, failed_count = ?, detail_json = ? WHERE id = ?")
RECORD_ERROR = ("INSERT INTO run_errors (run_id, run_step_id, step_name, member_identifier, error_message, error_stack,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
SUM_STEPS = ("SELECT COALESCE(SUM(created_count), 0) AS c, COALESCE(SUM(updated_count), 0) AS u,"
             " COALESCE(SUM(skipped_count), 0) AS s, COALESCE(SUM(failed_count), 0) AS f FROM run_steps"
             " WHERE run_id = ?")
END_RUN = ("UPDATE runs SET finished_at = ?, duration_ms = ?, outcome = ?, total_created = ?, total_updated = ?,"
           " total_skipped = ?, total_failed = ?, summary_json = ? WHERE id = ?")

# Its dashboard's queries: every one filters on the club.
LATEST_RUN = "SELECT * FROM runs WHERE club_slug = ? AND pipeline = ? ORDER BY started_at DESC LIMIT 1"
IS_RUNNING = "SELECT COUNT(*) AS n FROM runs WHERE club_slug = ? AND pipeline = ? AND outcome = 'running'"
HISTORY = "SELECT * FROM runs WHERE club_slug = ? AND pipeline = ? ORDER BY started_at DESC LIMIT 20 OFFSET ?"
RUN_STEPS = "SELECT * FROM run_steps WHERE club_slug = ? AND run_id = ? ORDER BY id"
ERRORS = ("SELECT e.*, r.pipeline FROM run_errors e JOIN runs r ON r.id = e.run_id WHERE e.club_slug = ?"
          " ORDER BY e.created_at DESC LIMIT 50")


class OriginalTracker:
    """The original tool's RunTracker: one run, its steps and errors, written with its own statements."""

    def __init__(self, store: Store, pipeline: str) -> None:
        self.store = store
        self.pipeline = pipeline
        self.run_id: int | None = None

    def _write(self, sql: str, params: tuple[Any, ...]) -> int | None:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql(sql), params)
            return int(cur.fetchone()[0]) if "RETURNING" in sql else None

    def start_run(self, at: str) -> int:
        self.run_id = self._write(START_RUN, (self.pipeline, at))
        assert self.run_id is not None
        return self.run_id

    def start_step(self, name: str, at: str) -> int:
        step_id = self._write(START_STEP, (self.run_id, name, at))
        assert step_id is not None
        return step_id

    def end_step(self, step_id: int, at: str, outcome: str = "success", created: int = 0, failed: int = 0) -> None:
        self._write(END_STEP, (at, 1000, outcome, created, 0, 0, failed, None, step_id))

    def record_error(self, step_id: int | None, step_name: str, message: str, at: str,
                     member: str | None = None) -> None:
        self._write(RECORD_ERROR, (self.run_id, step_id, step_name, member, message, None, at))

    def end_run(self, at: str, outcome: str = "success") -> None:
        values = tuple(self.store.read(SUM_STEPS, (self.run_id,))[0].values())
        self._write(END_RUN, (at, 1000, outcome, *values, None, self.run_id))


def dashboard(store: Store, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Run one of the original dashboard's queries for club 'rondo'."""
    return store.read(sql, (CLUB, *params))


# runtracker before schema version 6: club_slug without a default, counts NOT NULL, run_errors' step_name and
# error_message nullable; versions 2-5 as they still are in schema.MIGRATIONS.
RUNTRACKER_V1 = (
    """CREATE TABLE runs (id {pk}, club_slug TEXT, pipeline TEXT NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT, duration_ms INTEGER, outcome TEXT NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('success', 'failure', 'running', 'partial')), total_created INTEGER NOT NULL DEFAULT 0,
        total_updated INTEGER NOT NULL DEFAULT 0, total_skipped INTEGER NOT NULL DEFAULT 0,
        total_failed INTEGER NOT NULL DEFAULT 0, summary_json TEXT)""",
    """CREATE TABLE run_steps (id {pk}, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        club_slug TEXT, step_name TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, duration_ms INTEGER,
        outcome TEXT CHECK (outcome IN ('success', 'failure', 'skipped', 'partial')),
        created_count INTEGER NOT NULL DEFAULT 0, updated_count INTEGER NOT NULL DEFAULT 0,
        skipped_count INTEGER NOT NULL DEFAULT 0, failed_count INTEGER NOT NULL DEFAULT 0, detail_json TEXT)""",
    """CREATE TABLE run_errors (id {pk}, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        run_step_id INTEGER REFERENCES run_steps(id) ON DELETE CASCADE, club_slug TEXT, step_name TEXT,
        member_identifier TEXT, error_message TEXT, error_stack TEXT, created_at TEXT NOT NULL)""",
)


def make_runtracker_v5(cur: Any, dialect: str) -> None:
    """Create, on an empty database, the schema an earlier runtracker (version 5) left."""
    cur.execute(schema.BOOKKEEPING)
    for statement in RUNTRACKER_V1:
        cur.execute(statement.replace("{pk}", schema.PK[dialect]))
    for migration in schema.MIGRATIONS[1:5]:
        for step in schema.statements(migration, dialect):
            assert isinstance(step, str)
            cur.execute(step)
    for version in range(1, 6):
        cur.execute(f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({version}, 'v{version}',"
                    " '2026-01-01T00:00:00.000Z')")
