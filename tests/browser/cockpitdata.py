"""A history that strains the dashboard's layout: every outcome and pipeline state the data can make, a real crash
with a long traceback, long member ids and messages without a space to break at, a hostile long pipeline name,
long JSON and long command output. Used by test_phone_and_contrast.py; `example_urls` names a page of each kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from browserdata import add_run

from helpers import Db, app_env
from runtracker.base.clock import iso, now_ms
from runtracker.storage import open_store
from runtracker.storage.alerts import FAILED, PENDING, SENT, AlertStore, NewAlert

MINUTE, HOUR = 60_000, 3_600_000

# No space to break at, markup that must stay text, a slash (names are paths in URLs) and a non-ASCII letter.
# Under 200 characters (core.MAX_TEXT): the error browser refuses a longer filter value.
HOSTILE = '<script>alert("x")</script>/' + "über_lange_pijplijn_naam_zonder_spaties_" * 4
LONG_MEMBER = "KNVB" + "0123456789" * 12
LONG_EMAIL = "a.very.long.member.address." + "x" * 80 + "@voetbalvereniging-example.org"
LONG_URL = "https://api.example.org/v1/" + "segment/" * 40 + "members?expand=everything"
LONG_STEP = "synchronise-members-with-the-federation-export-" * 3

CRASHING_DEEP = """
import sys
from runtracker import RunTracker

tracker = RunTracker("crashy")
tracker.start_run()
tracker.start_step({step!r})


def descend(depth):
    if depth == 0:
        raise ValueError({message!r})
    descend(depth - 1)


descend(40)
"""


@dataclass
class Cockpit:
    """Ids of the runs the pages show."""

    crashed: int = 0
    partial: int = 0
    failed: int = 0
    hostile: int = 0
    running: int = 0
    pipelines: list[str] = field(default_factory=list)


def crash(workdir: Path, db: str) -> int:
    """A real process that dies 40 frames deep, with a message of 400 characters without a space."""
    app = workdir / "crashy.py"
    app.write_text(CRASHING_DEEP.format(step=LONG_STEP, message="cannot parse " + LONG_URL + "x" * 120))
    result = subprocess.run([sys.executable, str(app)], env=app_env(db, {"RUNTRACKER_RETENTION_DAYS": "0"}),
                            text=True, capture_output=True, timeout=60, cwd=workdir)
    assert result.returncode == 1 and "ValueError" in result.stderr, (result.returncode, result.stderr)
    run = next(r for r in reversed(Db(db).runs()) if r["pipeline"] == "crashy")
    return int(run["id"])


def build(workdir: Path, db: str) -> Cockpit:
    """The history, written as rows (hours apart) and by one real crashing process."""
    ids = Cockpit()
    # First: a tracker's start_run reaps other hosts' runs whose heartbeat it judges stale, the running row too.
    ids.crashed = crash(workdir, db)
    now = now_ms()
    store = open_store(db)
    try:
        steps = [("download", "success", 0.2), (LONG_STEP, "partial", 0.6), ("cleanup", "skipped", 0.2)]
        for i in range(24, 0, -1):
            outcome = "failure" if i == 9 else "success"
            errors = [("download", None, "HTTP 502 from " + LONG_URL)] if outcome == "failure" else []
            run = add_run(store, "nikki", now - i * HOUR, duration_s=500 if i != 5 else 3000, outcome=outcome,
                          errors=errors, steps=[("download", outcome, 1.0)] if errors else steps[:2],
                          hostname="sync-01", pid=4242, started_by="dashboard:" + "alice" * 12 if i == 3 else None)
            if outcome == "failure":
                ids.failed = run
        ids.partial = add_run(
            store, "nikki", now - 30 * MINUTE, duration_s=600, outcome="partial", steps=steps, hostname="sync-01",
            errors=[(LONG_STEP, LONG_MEMBER, f"member {LONG_MEMBER} not found in the export"),
                    (LONG_STEP, LONG_EMAIL, "Laposta refused " + LONG_EMAIL),
                    ("download", "KNVB1004821", "GET " + LONG_URL + " answered 404")],
            summary_json=json.dumps({"members": {"seen": 2400, "long": LONG_URL * 2}, "note": "x" * 300}))
        summary = {"command": ["node", "pipelines/" + "very-long-directory-name/" * 8 + "sync.js", "--all"],
                   "exit_code": 3}
        ids.hostile = add_run(
            store, HOSTILE, now - 2 * HOUR, duration_s=42, outcome="failure", exit_code=3,
            errors=[("run", LONG_MEMBER, "exit status 3: " + "Traceback line " * 30)],
            summary_json=json.dumps(summary),
            output_tail="\n".join(f"{i:04d} " + "output-without-spaces-" * 12 for i in range(40)))
        add_run(store, HOSTILE, now - 26 * HOUR, duration_s=40)
        add_run(store, "hourly", now - 5 * HOUR, duration_s=30)  # hourly schedule: overdue
        ids.running = add_run(store, "long-runner", now - 40 * MINUTE, outcome="running", hostname="another-host",
                              pid=777, heartbeat_at=iso(now))  # max_runtime 10m: too long
        alerts(store, ids, now)
    finally:
        store.close()
    ids.pipelines = ["nikki", HOSTILE, "hourly", "long-runner", "crashy", "backup"]
    return ids


def alerts(store, ids: Cockpit, now: int) -> None:
    """The alert history's every delivery state, with a long reason and the hostile pipeline's name."""
    history = AlertStore(store)
    at, later = iso(now - 20 * MINUTE), iso(now - 10 * MINUTE)
    rows = [(f"failed:run:{ids.failed}", "failed", "nikki", ids.failed, ("ops", "chat"), (SENT, PENDING)),
            (f"failed:run:{ids.hostile}", "failed", HOSTILE, ids.hostile, ("chat",), (FAILED,)),
            ("overdue:hourly:1", "overdue", "hourly", None, ("chat",), (SENT,)),
            ("recovered:nikki:1", "recovered", "nikki", None, (), ())]
    for key, event, pipeline, run_id, channels, states in rows:
        alert_id = history.raise_alert(NewAlert(key, event, pipeline, run_id, f"{pipeline}: {event}", "body"),
                                       channels, at, "cockpit:1:x")
        assert alert_id is not None
        for delivery, state in zip(history.deliveries(alert_id), states, strict=True):
            assert history.claim(delivery, "cockpit:1:x", later)
            history.finish_delivery(delivery["id"], "cockpit:1:x", state, at=later,
                                    error=None if state == SENT else "Failed to send to " + LONG_URL,
                                    next_attempt_at=later if state == PENDING else None)


def config_file(workdir: Path) -> Path:
    """Start buttons, a schedule that makes `hourly` overdue, a runtime limit, a pipeline that never ran."""
    path = workdir / "runtracker.toml"
    path.write_text(textwrap.dedent(f"""\
        [pipelines.nikki]
        command = ["true"]

        [pipelines.{json.dumps(HOSTILE)}]
        command = ["true"]

        [pipelines.hourly]
        schedule = "0 * * * *"
        timezone = "UTC"

        [pipelines.long-runner]
        max_runtime = "10m"

        [pipelines.backup]
        command = ["true"]
        """))
    return path


def q(text: str) -> str:
    return quote(text, safe="")


def example_urls(ids: Cockpit) -> dict[str, list[str]]:
    """For each route with parameters (as app.routes() spells it): pages of it to look at."""
    return {
        "/pipeline/{name:path}": [f"/pipeline/{q('nikki')}", f"/pipeline/{q(HOSTILE)}"],
        "/run/{run_id:id}": [f"/run/{ids.crashed}", f"/run/{ids.partial}", f"/run/{ids.hostile}",
                             f"/run/{ids.running}"],
        "/errors/{run_id:id}": [f"/errors/{ids.partial}"],
        "/member/{identifier:path}": [f"/member/{q(LONG_MEMBER)}", f"/member/{q(LONG_EMAIL)}"],
    }


# Variants of pages without parameters: other views of the same route.
VARIANTS = [
    "/errors?view=groups",
    "/errors?" + urlencode({"pipeline": "nikki"}),  # run by run
    "/errors?" + urlencode({"pipeline": HOSTILE, "member": LONG_MEMBER, "q": "Traceback"}),
    "/errors/clear?" + urlencode({"pipeline": HOSTILE, "member": LONG_MEMBER}),
    "/no/such/page",  # the message page (404)
    "/?view=list",  # the overview's compact list (every pipeline state in it)
    "/?" + urlencode({"view": "list", "q": "über"}),  # a search that finds the hostile name
    "/runs?" + urlencode({"outcome": "failure"}),
    "/alerts?" + urlencode({"state": "failed"}),
]
