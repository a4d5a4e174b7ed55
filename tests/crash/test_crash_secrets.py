"""A process that dies with a secret in its exception: the crash rows, stacks and summary hold *** instead,
while the process's own traceback on stderr is unchanged."""

from __future__ import annotations

import json

from helpers import Db, run_app

SECRET = "hunter2-4b9d"

APP = """
import os, threading
from runtracker import RunTracker

def connect(dsn, token):
    raise ConnectionError(f"could not connect to {dsn} (Authorization: Bearer {token})")

tracker = RunTracker("nikki")
tracker.start_run()
step = tracker.start_step("download https://admin:" + os.environ["SYNC_PASSWORD"] + "@api.example.org")
worker = threading.Thread(target=connect, args=("postgresql://sync:" + os.environ["SYNC_PASSWORD"] + "@db/x",
                                                os.environ["API_TOKEN"]))
worker.start()
worker.join()
connect("https://admin:" + os.environ["SYNC_PASSWORD"] + "@api.example.org", os.environ["API_TOKEN"])
"""


def test_an_uncaught_exception_with_secrets_leaves_redacted_crash_rows(tmp_path, db_url):
    """Thread crash and process crash: failure with crash rows, and no secret in any column of any table."""
    token = "tok-" + SECRET
    result = run_app(tmp_path, APP, db_url, env={"SYNC_PASSWORD": SECRET, "API_TOKEN": token})
    assert result.returncode == 1
    assert SECRET in result.stderr  # the process's own traceback is not ours to change
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "failure"
    crashes = db.crash_rows(run["id"])
    assert len(crashes) == 2
    assert all("https://admin:***@api.example.org" in row["error_message"] or "sync:***@db" in row["error_message"]
               for row in crashes)
    stored = json.dumps([db.query(f"SELECT * FROM {t}") for t in ("runs", "run_steps", "run_errors")], default=str)
    assert SECRET not in stored
    assert "(Authorization: ***" in stored
