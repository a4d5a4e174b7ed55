"""The README's screenshots of the dashboard: `python tests/browser/screenshots.py [--out DIR]`.

Builds a demo history in a temporary SQLite database — five pipelines over the last weeks with successes,
partial runs whose errors name members, a failure and a slow run (rows written with past times), then, through
real processes with tracking on: a run that crashes with a traceback, a run SIGKILLed and reaped by `runtracker
reap`, and a run still in progress — starts `runtracker serve --demo` on it with a config file (Start buttons,
a schedule), logs in with Debian's Chromium, and saves full-page PNGs 1280 px wide to docs/screenshots/:
overview (cards and list), a pipeline's history, the crashed run, the error browser's grouped view, a member's
page and the runs since last night; and at 390 px in the dark theme the overview and the crashed run.

Not a test (pytest collects test_*.py only); it needs what the browser tests need (`make browser`).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # browserlib and browserdata; tests/helpers.py

from browserdata import add_run, crashed_run  # noqa: E402
from browserlib import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_TIMEOUT_MS,
    chromium_missing_message,
    chromium_present,
    login,
    start_dashboard,
    stop_dashboard,
)

from helpers import app_env, wait_until  # noqa: E402
from runtracker.base.clock import iso, now_ms  # noqa: E402
from runtracker.storage import open_store  # noqa: E402

OUT = HERE.parent.parent / "docs" / "screenshots"
WIDTH, HEIGHT = 1280, 400  # full-page shots: as tall as each page, no blank below a short one
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000

# Members that fail in nikki every night (not found in the federation's export), and one whose e-mail address
# Laposta refuses too: the member page's subject.
MEMBER = "KNVB1004821"
NOT_FOUND_EVERY_NIGHT = [MEMBER, "KNVB1187345", "KNVB2034719", "KNVB2291006", "KNVB3310582", "KNVB3348120"]

RUNNING_APP = """
import os, sys, time
from runtracker import RunTracker

tracker = RunTracker("rondo-sync")
tracker.start_run()
fetch = tracker.start_step("fetch-changes")
tracker.end_step(fetch, "success", updated=48)
tracker.start_step("sync-members")
print("running", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
tracker.end_run("success")
"""

KILLED_APP = """
import time
from runtracker import RunTracker

tracker = RunTracker("backup")
tracker.start_run()
dump = tracker.start_step("dump-database")
print("dumping", flush=True)
time.sleep(600)
"""


def history(db: str, now: int) -> None:
    """The past: runs written as rows, hours to weeks ago, in the order they started (ids follow time, as they
    would have)."""
    rng = random.Random(7)
    runs: list[tuple[int, str, dict[str, Any]]] = []

    def add(pipeline: str, started: int, **kwargs: Any) -> None:
        runs.append((started, pipeline, kwargs))

    def counts(created: tuple[int, int], updated: tuple[int, int], skipped: tuple[int, int]) -> dict[str, int]:
        return {"created": rng.randint(*created), "updated": rng.randint(*updated), "skipped": rng.randint(*skipped)}

    # nikki: nightly member sync, 90 nights; the last five partial (the same members not found), a failed download
    # started again from the dashboard that morning, two slow nights.
    nikki_steps = [("download", "success", 0.15), ("sync-members", "success", 0.7), ("sync-teams", "success", 0.15)]
    for night in range(89, -1, -1):
        started = now - night * DAY - 3 * HOUR
        duration = rng.uniform(480, 660)
        errors: list[tuple[str, str | None, str]] = []
        outcome, steps = "success", nikki_steps
        if night < 5:
            outcome = "partial"
            errors = [("sync-members", m, f"member {m} not found in the Sportlink export")
                      for m in NOT_FOUND_EVERY_NIGHT[: 6 - night % 2]]
            steps = [("download", "success", 0.15), ("sync-members", "partial", 0.7), ("sync-teams", "success", 0.15)]
        elif night == 11:
            outcome, duration = "failure", 95
            errors = [("download", None, "download failed: HTTP 502 from the Sportlink export (attempt 3 of 3)")]
            steps = [("download", "failure", 1.0)]
        elif night in (17, 52):
            duration = rng.uniform(1900, 2300)  # the export was slow: flagged
        add("nikki", started, duration_s=duration, outcome=outcome, errors=errors, steps=steps, hostname="sync-01",
            pid=rng.randint(2000, 60000), **counts((0, 12), (150, 420), (2300, 2400)))
        if night == 11:
            add("nikki", started + 5 * HOUR, duration_s=rng.uniform(480, 660), steps=nikki_steps, hostname="sync-01",
                pid=rng.randint(2000, 60000), started_by="dashboard:alice", **counts((0, 12), (150, 420), (2300, 2400)))
    # laposta: every six hours for a week; partial when the API refused or an address was invalid.
    for slot in range(27, -1, -1):
        errors = []
        if slot in (2, 9, 16):
            errors = [("push-lists", m, f"HTTP 503 from the Laposta API (attempt {rng.randint(1, 3)} of 3)")
                      for m in rng.sample(NOT_FOUND_EVERY_NIGHT[1:] + ["KNVB4410923", "KNVB4471150"], 3)]
        if slot in (1, 5, 9, 13):
            errors.append(("fetch-members", MEMBER, "invalid e-mail address 'p.devries@@ziggo.nl'"))
        add("laposta", now - slot * 6 * HOUR - 40 * MINUTE, duration_s=rng.uniform(60, 130),
            outcome="partial" if errors else "success", errors=errors, hostname="sync-01",
            steps=[("fetch-members", "partial" if errors else "success", 0.4), ("push-lists", "success", 0.6)],
            **counts((0, 5), (10, 60), (1900, 2000)))
    # freescout: hourly for a day (the real crash comes last).
    for hour in range(24, 0, -1):
        add("freescout", now - hour * HOUR + 5 * MINUTE, duration_s=rng.uniform(25, 50), hostname="sync-02",
            steps=[("download", "success", 0.3), ("sync-conversations", "success", 0.7)],
            **counts((0, 20), (5, 40), (300, 340)))
    # backup: nightly for two weeks (the real reaped run comes last).
    for night in range(14, 0, -1):
        add("backup", now - night * DAY - 5 * HOUR, duration_s=rng.uniform(1200, 1500), hostname="db-01",
            steps=[("dump-database", "success", 0.8), ("upload", "success", 0.2)], created=1, updated=0, skipped=0)
    # rondo-sync: every quarter of an hour for eight hours (the one in progress comes last).
    for quarter in range(32, 0, -1):
        failed = quarter == 7
        add("rondo-sync", now - quarter * 15 * MINUTE, duration_s=rng.uniform(120, 190),
            outcome="failure" if failed else "success", hostname="sync-01",
            errors=[("sync-members", None, "connection reset by the Rondo API")] if failed else [],
            steps=[("fetch-changes", "success", 0.2), ("sync-members", "failure" if failed else "success", 0.8)],
            **counts((0, 4), (10, 80), (0, 0)))

    store = open_store(db)
    try:
        for started, pipeline, kwargs in sorted(runs, key=lambda r: r[0]):
            add_run(store, pipeline, started, **kwargs)
    finally:
        store.close()


def reaped_run(workdir: Path, db: str) -> None:
    """backup's latest run: its process SIGKILLed mid-step, then found dead by `runtracker reap`."""
    app = workdir / "backup.py"
    app.write_text(textwrap.dedent(KILLED_APP))
    proc = subprocess.Popen([sys.executable, str(app)], env=app_env(db), stdout=subprocess.PIPE, text=True,
                            cwd=workdir)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "dumping"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run([sys.executable, "-m", "runtracker", "reap", "--db", db], env=app_env(db), check=True,
                   capture_output=True)


def config_file(workdir: Path, now: int) -> Path:
    """Start buttons for three pipelines (one never ran), and nikki's nightly schedule."""
    at = time.gmtime((now - 3 * HOUR) / 1000)
    path = workdir / "runtracker.toml"
    path.write_text(textwrap.dedent(f"""\
        [pipelines.nikki]
        display_name = "Nikki members"
        description = "Members from the federation export into Nikki, nightly"
        command = ["node", "pipelines/sync-nikki.js"]
        schedule = "{at.tm_min} {at.tm_hour} * * *"
        timezone = "UTC"

        [pipelines.rondo-sync]
        command = ["python", "-m", "rondo.sync"]

        [pipelines.sportlink-export]
        command = ["node", "pipelines/sportlink-export.js"]
        """))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default {OUT})")
    args = parser.parse_args()
    if not chromium_present():
        print(chromium_missing_message(), file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["RUNTRACKER_RETENTION_DAYS"] = "0"  # the real processes' start_run must keep the weeks of history
    with tempfile.TemporaryDirectory(prefix="runtracker-screenshots-") as tmp:
        work = Path(tmp)
        db = f"sqlite:///{work / 'dashboard.sqlite'}"
        now = now_ms()
        history(db, now)
        reaped_run(work, db)
        crashed = crashed_run(work / "pipelines", db, "freescout", step="sync-conversations",
                              message=f"conversation 48213: customer {MEMBER} has no e-mail address", member=MEMBER,
                              script="sync_freescout.py", work_s=0.4)
        gate = work / "gate"
        running_app = work / "rondo_sync.py"
        running_app.write_text(textwrap.dedent(RUNNING_APP))
        running = subprocess.Popen([sys.executable, str(running_app), str(gate)], env=app_env(db),
                                   stdout=subprocess.PIPE, text=True, cwd=work)
        assert running.stdout is not None and running.stdout.readline().strip() == "running"
        server = start_dashboard(db, work / "serve.log", extra_args=["--config", str(config_file(work, now))])
        shots = [("overview.png", "/"), ("history.png", "/pipeline/nikki"), ("crashed-run.png", f"/run/{crashed}"),
                 ("errors-grouped.png", "/errors?view=groups"), ("member.png", f"/member/{MEMBER}"),
                 ("runs.png", "/runs"), ("overview-list.png", "/?view=list")]
        # A phone in the dark: the overview and a run, 390 px wide.
        phone = [("phone-overview-dark.png", "/?view=cards"), ("phone-run-dark.png", f"/run/{crashed}")]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                # Each viewport (and theme) a page of its own, logged in once, then its shots in turn.
                for viewport, scheme, shown in (({"width": WIDTH, "height": HEIGHT}, "light", shots),
                                                ({"width": 390, "height": 844}, "dark", phone)):
                    page = browser.new_page(viewport=viewport, color_scheme=scheme)
                    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
                    login(page, server.url)
                    for name, path in shown:
                        page.goto(server.url + path)
                        page.wait_for_load_state("networkidle")
                        page.screenshot(path=str(args.out / name), full_page=True)
                        print(f"{args.out / name}: {path} ({viewport['width']} px, {scheme})")
                browser.close()
        finally:
            stop_dashboard(server)
            gate.touch()
            running.wait(30)
        wait_until(lambda: running.poll() is not None, "the running pipeline to end")
    print(f"(database built at {iso(now)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
