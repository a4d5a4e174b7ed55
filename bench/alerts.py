"""The monitor's latencies and the cost of its pass: how soon a death is reaped and an alert leaves.

    python bench/alerts.py            # 20 deaths and 20 failures per backend; the pass at 1,000,000 runs
    python bench/alerts.py --quick    # 8 of each; the pass at 100,000 runs
    make bench-alerts

Everything is real: a `runtracker monitor` process (default interval 5 s, alerts on) watches the database;
pipelines are Python processes; alerts go by mail to a real SMTP server (aiosmtpd) in this process, through
Apprise. Measured, on one machine and one clock:

- SIGKILL → reaped: the reaper's `reaped_at` minus the moment of the kill (pipelines killed one by one at random
  moments within the monitor's 5 s interval; a pass-only monitor would average 2.5 s);
- SIGKILL → alert: the crash mail's arrival at the SMTP server minus the kill;
- end_run → alert: a pipeline ends its run `failure`; the mail's arrival minus the moment end_run returned;
- a monitor pass (reap + schedules + too long + ended runs) at 1,000,000 runs and 50 scheduled pipelines, in
  this process, on SQLite and PostgreSQL ($RUNTRACKER_BENCH_PG, default the local test server).

Goals (the issue's): reaped ≤ 100 ms p95 same host; alerts ≤ 1 s after end_run and after a SIGKILL; a pass
≤ 20 ms. The last line is one JSON object; bench/RESULTS.md gets a section.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from benchlib import cache_dir, machine, table, verdict, write_section  # noqa: E402

from runtracker.base.clock import to_ms  # noqa: E402
from runtracker.core import reaper  # noqa: E402
from runtracker.storage import Runs, open_store, schema  # noqa: E402
from runtracker.storage.alerts import AlertStore  # noqa: E402

PG_URL = os.environ.get("RUNTRACKER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "bench_alerts"
PIPELINES = 50

OWNER = """
import time
from runtracker import RunTracker
tracker = RunTracker("bench-kill")
print(tracker.start_run(), flush=True)
tracker.start_step("sync")
time.sleep(3600)
"""
FAILING = """
import time
from runtracker import RunTracker
tracker = RunTracker("bench-fail")
run_id = tracker.start_run()
tracker.record_error(step_name="sync", error_message="member not found")
tracker.end_run("failure")
print(run_id, time.time(), flush=True)
"""


class Mailbox:
    """A real SMTP server; the arrival time of each mail by subject."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.arrived: dict[str, float] = {}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        import email

        message = email.message_from_bytes(envelope.content)  # type: ignore[attr-defined]
        self.arrived[str(message["Subject"])] = time.time()
        return "250 OK"

    def wait(self, subject: str, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while subject not in self.arrived:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no mail {subject!r} within {timeout} s")
            time.sleep(0.002)
        return self.arrived[subject]


def _env(db: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["RUNTRACKER_DB"] = db
    env["RUNTRACKER_RETENTION_DAYS"] = "0"  # the PostgreSQL history spans a year: keep it
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def _wait(predicate, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.01)


def latencies(db: str, deaths: int, failures: int, workdir: Path) -> dict[str, list[float]]:
    """Seconds from each kill to its run's `reaped_at` and to its crash mail; from each end_run to its mail."""
    mailbox = Mailbox()
    config = workdir / "runtracker.toml"
    config.write_text(f'[alerts.channels]\nmail = "mailto://127.0.0.1:{mailbox.port}?from=bench@example.org'
                      f'&to=ops@example.org&mode=insecure"\n')
    monitor = subprocess.Popen([sys.executable, "-m", "runtracker", "monitor", "--interval", "5", "--config",
                                str(config)], env=_env(db), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    store = open_store(db)
    result: dict[str, list[float]] = {"reaped": [], "kill_alert": [], "end_alert": []}
    owners: list[subprocess.Popen[str]] = []
    try:
        _wait(lambda: AlertStore(store).mark("runs") is not None, "the monitor's start")
        (workdir / "owner.py").write_text(OWNER)
        (workdir / "failing.py").write_text(FAILING)
        owners = [subprocess.Popen([sys.executable, str(workdir / "owner.py")], env=_env(db), stdout=subprocess.PIPE,
                                   text=True) for _ in range(deaths)]
        ids = [int(p.stdout.readline()) for p in owners]  # type: ignore[union-attr]
        time.sleep(1.0)  # the monitor waits on them from its next tick on
        for proc, run_id in zip(owners, ids, strict=True):  # the owners, killed one by one
            time.sleep(random.uniform(1.1, 2.0))  # alerts to one channel leave at most one a second
            killed = time.time()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            arrived = mailbox.wait(f"bench-kill: run {run_id} crashed (lost)")
            run = Runs(store).get_run(run_id)
            assert run is not None and run["reaped_at"], run
            result["reaped"].append((to_ms(run["reaped_at"]) or 0) / 1000 - killed)
            result["kill_alert"].append(arrived - killed)
            print(f"  run {run_id}: reaped after {result['reaped'][-1] * 1000:.1f} ms, mailed after "
                  f"{(arrived - killed) * 1000:.0f} ms", file=sys.stderr)
        for _ in range(failures):
            time.sleep(random.uniform(1.1, 2.0))
            out = subprocess.run([sys.executable, str(workdir / "failing.py")], env=_env(db), capture_output=True,
                                 text=True, check=True).stdout.split()
            run_id, ended = int(out[0]), float(out[1])
            result["end_alert"].append(mailbox.wait(f"bench-fail: run {run_id} failed") - ended)
    finally:
        for proc in owners:  # none is left behind, whatever went wrong
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        monitor.send_signal(signal.SIGTERM)
        monitor.communicate(timeout=30)
        mailbox.controller.stop()
        with store.transaction() as cur:  # the PostgreSQL history is reused: leave it as it was
            cur.execute("DELETE FROM runs WHERE pipeline IN ('bench-kill', 'bench-fail')")
        store.close()
    return result


# -- the pass at a long history -------------------------------------------------------------------------------
def _history_sql(dialect: str, runs: int, epoch: int) -> str:
    """`runs` ended runs over 50 pipelines, one every 30 s up to an hour ago; 1 in 20 a failure."""
    if dialect == "sqlite":
        series = f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {runs}) SELECT i FROM s)"
        ts = "strftime('%Y-%m-%dT%H:%M:%S.000Z', {x}, 'unixepoch')"
    else:
        series = f"generate_series(1, {runs}) AS n(i)"
        ts = "to_char(to_timestamp({x}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    start = f"{epoch} + i * 30"
    return ("INSERT INTO runs (club_slug, pipeline, started_at, finished_at, duration_ms, outcome, ended_by)"
            f" SELECT 'rondo', 'pipeline-' || (i % {PIPELINES}), {ts.format(x=start)}, {ts.format(x=start + ' + 20')},"
            " 20000, CASE WHEN i % 20 = 0 THEN 'failure' ELSE 'success' END, 'owner'"
            f" FROM {series}")


def sqlite_history(runs: int) -> str:
    path = cache_dir() / f"alerts-{runs}-v{schema.LATEST}.sqlite"
    if not path.exists():
        tmp = path.with_suffix(".building")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        open_store(str(tmp)).close()
        import sqlite3

        conn = sqlite3.connect(tmp, isolation_level=None)
        conn.execute(_history_sql("sqlite", runs, int(time.time()) - 3600 - runs * 30))
        conn.execute("ANALYZE")
        conn.close()
        os.replace(tmp, path)
    return str(path)


def postgres_history(runs: int) -> str | None:
    from runtracker.storage.postgres import driver

    pg = driver()
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{PG_SCHEMA}"
    try:
        with pg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"SET search_path TO {PG_SCHEMA}")
            if conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == runs and conn.execute(
                    "SELECT MAX(version) FROM schema_migrations").fetchone()[0] == schema.LATEST:
                return url
    except pg.OperationalError:
        return None
    except pg.Error:
        pass
    with pg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")
    open_store(url).close()
    with pg.connect(url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        conn.execute(_history_sql("postgresql", runs, int(time.time()) - 3600 - runs * 30))
        conn.execute("SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT MAX(id) FROM runs))")
        conn.execute("VACUUM ANALYZE runs")
    return url


def pass_cost(db: str, passes: int, workdir: Path) -> list[float]:
    """Seconds per monitor pass (reap, then the watcher's evaluate) with 50 scheduled pipelines."""
    from runtracker.alerts.watcher import Watcher

    config = workdir / "runtracker-50.toml"
    config.write_text("".join(f'[pipelines.pipeline-{n}]\nschedule = "{n} * * * *"\ntimezone = "Europe/Amsterdam"\n'
                              f'max_runtime = "2h"\n' for n in range(PIPELINES)))
    store = open_store(db)
    try:
        alerts = AlertStore(store)
        with store.transaction() as cur:  # every pass measured as the steady state of a monitor that ran before
            for table_name in ("alert_deliveries", "alerts", "alert_pipelines", "alert_marks"):
                cur.execute(f"DELETE FROM {table_name}")
        watcher = Watcher(store, str(config))
        assert alerts.mark("runs") is not None
        times = []
        for _ in range(passes + 5):
            began = time.perf_counter()
            running = Runs(store).running_runs()
            reaper.reap(store, detected_by="bench", rows=running)
            watcher.evaluate(running)
            times.append(time.perf_counter() - began)
        return times[5:]  # the first passes write each pipeline's state once
    finally:
        store.close()


def _machine(facts: object) -> str:
    assert isinstance(facts, dict)
    return f"{facts['nproc']} cores, {facts['cpu']}, {facts['memory']}, {facts['python']}, SQLite {facts['sqlite']}"


def _goal(value_ms: float, goal_ms: float) -> str:
    mark = verdict(value_ms, goal_ms, False).split(" ", 2)[-1]
    return f"p95 ≤ {goal_ms:g} ms {mark}"


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95 + 0.5) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    deaths, failures, runs = (8, 8, 100_000) if args.quick else (20, 20, 1_000_000)
    rows: list[tuple[str, str, str, str]] = []
    summary: dict[str, object] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        backends = {"SQLite": f"sqlite:///{workdir / 'latency.sqlite'}"}
        pg = postgres_history(runs)
        if pg is not None:
            backends["PostgreSQL"] = pg
        for name, db in backends.items():
            found = latencies(db, deaths, failures, workdir)
            for key, label, goal in (("reaped", "SIGKILL → run reaped", 0.1), ("kill_alert", "SIGKILL → alert mailed",
                                     1.0), ("end_alert", "end_run('failure') → alert mailed", 1.0)):
                values = found[key]
                rows.append((f"{label} ({name})",
                             f"{statistics.median(values) * 1000:.1f} ms / {p95(values) * 1000:.1f} ms",
                             _goal(p95(values) * 1000, goal * 1000),
                             f"median / p95 of {len(values)}"))
                summary[f"{key}_p95_ms_{name.lower()}"] = round(p95(values) * 1000, 1)
        histories = {"SQLite": sqlite_history(runs)}
        if pg is not None:
            histories["PostgreSQL"] = pg
        for name, db in histories.items():
            times = pass_cost(db, 50 if args.quick else 200, workdir)
            rows.append((f"monitor pass, {runs:,} runs, {PIPELINES} scheduled pipelines ({name})",
                         f"{statistics.median(times) * 1000:.2f} ms / {p95(times) * 1000:.2f} ms",
                         _goal(p95(times) * 1000, 20), f"median / p95 of {len(times)} passes"))
            summary[f"pass_p95_ms_{name.lower()}"] = round(p95(times) * 1000, 2)
    text = ("## Alerts and the monitor (`make bench-alerts`)\n\n" + table(rows) + "\n\n"
            f"Monitor interval 5 s; {deaths} SIGKILLs and {failures} failed runs per backend; mails to a local SMTP "
            f"server through Apprise. Machine: {_machine(summary['machine'])}.\n")
    print(text)
    if not args.quick:
        write_section("alerts", text)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
