"""Soak: pipelines killed at random for half an hour, with `runtracker monitor` reaping (`make bench-soak`).

    python bench/soak.py                          # 30 minutes on SQLite, then 30 on PostgreSQL
    python bench/soak.py --minutes 2              # a short run (smoke test; RESULTS.md is not written)
    python bench/soak.py --seconds 40 --backend sqlite --keep   # keep the database, journals and logs
    RUNTRACKER_BENCH_PG=postgresql://... python bench/soak.py --backend postgresql

Per backend, on a fresh database (a SQLite file; a schema of its own on PostgreSQL, dropped afterwards):

- 4 worker processes loop: start_run, 2-5 steps (a short pause in each), errors (one by one and in batches,
  realistic messages, some with a planted secret `https://admin:hunter2@...`), end_step with counts, end_run.
  After every call that returned (and that the never-raise guard did not swallow), the worker appends one line
  to its **acknowledgement journal** (O_APPEND, one write per line: it survives the process's death, which is
  what is tested here, though not a power loss): what the database must now hold.
- a killer sends SIGKILL, SIGTERM, SIGINT or SIGHUP to a random worker every 0.5-3 s; the dead one is
  restarted at once, so 4 keep running. Its exit status must be the signal's (as without runtracker).
- one long-lived worker runs the same loop the whole time, never killed; `runtracker monitor --interval 1`
  runs throughout. Their RSS is sampled after a warm-up and at the end (goal: flat).
- at the end the workers are stopped (a stop file: each finishes its run), `runtracker reap` runs once, and
  the database is compared with the journals: every acknowledged run, step, step end (outcome and counts),
  error and run end (outcome and stats) must be there (rows lost: goal 0), no run `running` (goal 0), every
  killed process's open run ended `failure` with a crash row — by the crash hooks for SIGTERM/SIGINT/SIGHUP,
  by the reaper for SIGKILL — with no step left open, and no run that ended itself marked reaped.

The database size is reported at the warm-up and at the end, with the bytes per run in between. Retention is
in whole days (3 by default, as here): no run of a soak reaches it, so the figure to read is bytes per run,
times the runs a retention window holds. The last line is one JSON object; a run of both backends of at
least 10 minutes each writes bench/RESULTS.md's `soak` section.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
PG_ENV = "RUNTRACKER_BENCH_PG"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
WORKERS = 4
KILL_EVERY_S = (0.5, 3.0)
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
MONITOR_INTERVAL_S = 1.0
HEARTBEAT_S = 1.0
RETENTION_DAYS = 3
SECRET = "hunter2"
STEPS = ("download", "sync-members", "sync-teams", "sync-contributions", "upload")
MESSAGES = (
    "member {m} not found in Sportlink",
    "HTTP 503 from https://api.sportlink.example/v2/members/{m}: Service Unavailable",
    "timeout after 30 s calling https://admin:" + SECRET + "@crm.internal/api/members/{m}",
    'duplicate key value violates unique constraint "members_pkey" (member {m})',
    "ValueError: invalid date '31-02-2026' for member {m}",
    "Laposta: e-mail address of {m} bounced (550 5.1.1 user unknown)",
)
STACK = ('Traceback (most recent call last):\n  File "sync.py", line 88, in push\n    session.post(url)\n'
         "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='crm.internal'): "
         "https://admin:" + SECRET + "@crm.internal/api/members/{m} Max retries exceeded")


# -- a worker: one pipeline process --------------------------------------------------------------------------
def worker(slot: str, journal: str, stop: str, pause_ms: float) -> None:
    """Run lifecycles until the stop file exists; after every acknowledged call, one journal line. The runtracker
    soaked comes from $PYTHONPATH (the driver's --src)."""
    from runtracker import RunTracker
    from runtracker.testing import capture_swallowed

    rng = random.Random()
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def ack(*fields: Any) -> None:
        # One write(2) per line on an O_APPEND descriptor: in the kernel once it returns, whatever kills us next.
        os.write(fd, (json.dumps(fields, separators=(",", ":")) + "\n").encode())

    failed = object()

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        """The call's result, or `failed` when the guard swallowed an exception (nothing acknowledged)."""
        with capture_swallowed() as swallowed:
            result = fn(*args, **kwargs)
        if swallowed:
            ack("failed", fn.__name__, repr(swallowed[0])[:300])
            return failed
        return result

    def pause() -> None:
        time.sleep(rng.uniform(0, 2 * pause_ms) / 1000)

    tracker = RunTracker(f"soak-{slot}", retention_days=RETENTION_DAYS)
    n = 0
    while not os.path.exists(stop):
        n += 1
        run_id = call(tracker.start_run)
        # None: its start waits for the database and is written by the next call that can write (not acked yet).
        acked_run = run_id is not failed and run_id is not None
        if acked_run:
            ack("run", run_id)
        for name in STEPS[: rng.randint(2, len(STEPS))]:
            step_id = call(tracker.start_step, name)
            if step_id is failed or step_id is None:
                continue
            if not acked_run and tracker.run_id is not None:
                run_id, acked_run = tracker.run_id, True
                ack("run", run_id)
            ack("step", run_id, step_id)
            pause()
            errors = 0
            draw = rng.random()
            if draw < 0.25:
                for _ in range(rng.randint(1, 3)):
                    member = f"KNVB{rng.randint(1_000_000, 9_999_999)}"
                    message = rng.choice(MESSAGES).format(m=member)
                    stack = STACK.format(m=member) if rng.random() < 0.2 else None
                    if call(tracker.record_error, step_name=name, step_id=step_id, member_identifier=member,
                            error_message=message, error_stack=stack) is not failed:
                        ack("err", run_id, step_id, 1)
                        errors += 1
            elif draw < 0.35:
                batch = [{"member_identifier": f"KNVB{rng.randint(1_000_000, 9_999_999)}",
                          "message": rng.choice(MESSAGES).format(m=i)} for i in range(rng.randint(5, 30))]
                if call(tracker.record_errors, name, step_id, batch) is not failed:
                    ack("err", run_id, step_id, len(batch))
                    errors += len(batch)
            counts = [rng.randint(0, 500), rng.randint(0, 200), rng.randint(0, 50), errors]
            outcome = "success" if not errors else "failure" if rng.random() < 0.2 else "partial"
            if call(tracker.end_step, step_id, outcome, *counts) is True:
                ack("step_end", run_id, step_id, outcome, *counts)
        outcome = rng.choices(("success", "partial", "failure"), (85, 10, 5))[0]
        if call(tracker.end_run, outcome, {"slot": slot, "n": n}) is True:
            if not acked_run and tracker.run_id is not None:
                run_id, acked_run = tracker.run_id, True
                ack("run", run_id)
            ack("end", run_id, outcome, n)
    tracker.close()
    os.close(fd)


# -- the driver ------------------------------------------------------------------------------------------------
@dataclass
class Proc:
    """One worker process: its slot, journal and stderr, the signal it was sent and how it ended."""

    slot: str
    popen: subprocess.Popen[bytes]
    journal: Path
    stderr: Path
    signal: int | None = None
    signalled_at: float = 0.0
    returncode: int | None = None


@dataclass
class Result:
    backend: str
    seconds: float = 0.0
    procs: list[Proc] = field(default_factory=list)
    rss: dict[str, list[float]] = field(default_factory=dict)  # name -> MB at warm-up, ..., at the end
    size: list[tuple[int, int, int]] = field(default_factory=list)  # (bytes, WAL bytes, runs): warm-up, end
    wal_max: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return float("nan")


def _kill_group(popen: subprocess.Popen[Any]) -> None:
    """SIGKILL a child and its process group (each child leads a session of its own)."""
    if popen.poll() is None:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class Soak:
    def __init__(self, backend: str, url: str, workdir: Path, seconds: float, pause_ms: float, src: Path,
                 log: Any) -> None:
        self.backend, self.url, self.workdir, self.seconds, self.pause_ms = backend, url, workdir, seconds, pause_ms
        self.log = log
        self.stop_file = workdir / "stop"
        self.result = Result(backend)
        self.env = dict(os.environ)
        self.env.update({"RUNTRACKER_DB": url, "RUNTRACKER_CRASH_DIR": str(workdir / "crash"),
                         "RUNTRACKER_HEARTBEAT_S": str(HEARTBEAT_S),
                         "PYTHONPATH": str(src) + os.pathsep + self.env.get("PYTHONPATH", "")})
        for name in ("RUNTRACKER_HOSTNAME", "RUNTRACKER_CONFIG", "RUNTRACKER_RETENTION_DAYS"):
            self.env.pop(name, None)
        self.children: list[subprocess.Popen[Any]] = []
        self.seq = 0
        self.rng = random.Random()

    def _spawn(self, args: list[str], stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
        # A session of its own: a Ctrl-C at the terminal reaches only the driver, which kills every child.
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            popen = subprocess.Popen(args, env=self.env, cwd=self.workdir, stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.children.append(popen)
        return popen

    def _worker(self, slot: str) -> Proc:
        self.seq += 1
        journal = self.workdir / f"journal-{slot}-{self.seq}.jsonl"
        stderr = self.workdir / f"worker-{slot}-{self.seq}.err"
        popen = self._spawn([sys.executable, __file__, "worker", slot, str(journal), str(self.stop_file),
                             str(self.pause_ms)], Path(os.devnull), stderr)
        proc = Proc(slot, popen, journal, stderr)
        self.result.procs.append(proc)
        return proc

    def _sample(self, monitor: subprocess.Popen[Any], long: Proc, store: Any) -> None:
        self.result.rss.setdefault("monitor", []).append(_rss_mb(monitor.pid))
        self.result.rss.setdefault("long-lived worker", []).append(_rss_mb(long.popen.pid))
        self.result.size.append((*self._size(store), _one(store, "SELECT COUNT(*) AS n FROM runs")))

    def _size(self, store: Any) -> tuple[int, int]:
        """(the database's bytes, its WAL's): the SQLite file and its -wal; the schema's tables on PostgreSQL."""
        if self.backend == "sqlite":
            path = Path(self.url.removeprefix("sqlite:///"))
            wal_file = path.with_name(path.name + "-wal")
            wal = wal_file.stat().st_size if wal_file.exists() else 0
            self.result.wal_max = max(self.result.wal_max, wal)
            return path.stat().st_size, wal
        return _one(store, "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c JOIN "
                           "pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = current_schema() "
                           "AND c.relkind = 'r'"), 0

    def run(self) -> Result:
        from runtracker.storage import open_store

        res, w = self.result, self.workdir
        store = open_store(self.url)  # created and migrated before anyone races to
        monitor_err = w / "monitor.err"
        monitor = self._spawn([sys.executable, "-m", "runtracker", "monitor", "--interval", str(MONITOR_INTERVAL_S),
                               "--json"], w / "monitor.out", monitor_err)
        try:
            deadline = time.monotonic() + 30
            while "monitoring" not in monitor_err.read_text() and time.monotonic() < deadline:
                if monitor.poll() is not None:
                    raise SystemExit(f"runtracker monitor exited: {monitor_err.read_text()[-2000:]}")
                time.sleep(0.05)
            long = self._worker("long")
            workers = [self._worker(str(i)) for i in range(WORKERS)]
            began = time.monotonic()
            warm_up = min(60.0, max(5.0, self.seconds / 10))
            next_kill = began + self.rng.uniform(*KILL_EVERY_S)
            next_report, sampled = began + 30, False
            while (now := time.monotonic()) < began + self.seconds:
                for i, proc in enumerate(workers):
                    if proc.signal is not None and proc.popen.poll() is None and now > proc.signalled_at + 60:
                        res.problems.append(f"worker {proc.slot} pid {proc.popen.pid} still alive 60 s after "
                                            f"{signal.Signals(proc.signal).name}: SIGKILLed")
                        _kill_group(proc.popen)
                    if proc.popen.poll() is not None:
                        self._ended(proc)
                        workers[i] = self._worker(proc.slot)
                if long.popen.poll() is not None:
                    raise SystemExit(f"the long-lived worker died: {long.stderr.read_text()[-2000:]}")
                if now >= next_kill:
                    alive = [p for p in workers if p.signal is None and p.popen.poll() is None]
                    if alive:
                        victim = self.rng.choice(alive)
                        victim.signal, victim.signalled_at = self.rng.choice(SIGNALS), now
                        victim.popen.send_signal(victim.signal)
                    next_kill = now + self.rng.uniform(*KILL_EVERY_S)
                if not sampled and now >= began + warm_up:
                    self._sample(monitor, long, store)
                    sampled = True
                if now >= next_report:
                    next_report += 30
                    killed = sum(p.signal is not None for p in res.procs)
                    running = _one(store, "SELECT COUNT(*) AS n FROM runs WHERE outcome = 'running'")
                    runs = _one(store, "SELECT COUNT(*) AS n FROM runs")
                    db, wal = self._size(store)
                    self.log(f"{self.backend}: {now - began:5.0f} s, {runs:,} runs, {running} running now, "
                             f"{killed} killed, RSS monitor {_rss_mb(monitor.pid):.1f} MB, long-lived worker "
                             f"{_rss_mb(long.popen.pid):.1f} MB, database {db / 2**20:.1f} MB"
                             + (f" + WAL {wal / 2**20:.1f} MB" if self.backend == "sqlite" else ""))
                time.sleep(0.02)
            res.seconds = time.monotonic() - began
            if not sampled:
                self._sample(monitor, long, store)
            self._sample(monitor, long, store)
            self.stop_file.touch()
            stop_by = time.monotonic() + 60
            for proc in [*workers, long]:
                try:
                    proc.popen.wait(timeout=max(0.1, stop_by - time.monotonic()))
                except subprocess.TimeoutExpired:
                    res.problems.append(f"worker {proc.slot} (pid {proc.popen.pid}) did not stop within 60 s")
                    _kill_group(proc.popen)
                self._ended(proc)
            reap = subprocess.run([sys.executable, "-m", "runtracker", "reap", "--json"], env=self.env, cwd=w,
                                  capture_output=True, text=True, timeout=300)
            res.figures["reaped_by_last_reap"] = len([x for x in reap.stdout.splitlines() if x.startswith("{")])
            res.figures["running_after_last_reap"] = _one(
                store, "SELECT COUNT(*) AS n FROM runs WHERE outcome = 'running'")
            monitor.send_signal(signal.SIGTERM)
            try:
                code = monitor.wait(timeout=30)
                if code != 0:
                    res.problems.append(f"runtracker monitor exited {code}: {monitor_err.read_text()[-1000:]}")
            except subprocess.TimeoutExpired:
                res.problems.append("runtracker monitor did not stop within 30 s of SIGTERM")
            res.figures["reaped_by_monitor"] = sum(
                1 for x in (w / "monitor.out").read_text().splitlines() if x.startswith("{"))
            failed_passes = monitor_err.read_text().count("the monitor's pass failed")
            if failed_passes:
                res.problems.append(f"{failed_passes} monitor passes failed")
            verify(res, store)
        finally:
            for child in self.children:
                _kill_group(child)
            store.close()
        return res

    def _ended(self, proc: Proc) -> None:
        """Check a finished worker's exit status: a signal's, exactly as without runtracker; 0 after the stop."""
        proc.returncode = code = proc.popen.wait()
        expected = 0 if proc.signal is None else -proc.signal
        # A SIGINT during the interpreter's own start-up (before any code of ours) makes Python print
        # "KeyboardInterrupt" and exit 1, with or without runtracker.
        early_sigint = proc.signal == signal.SIGINT and code == 1 and proc.stderr.read_text() == "KeyboardInterrupt\n"
        if code != expected and not early_sigint:
            what = "not signalled" if proc.signal is None else signal.Signals(proc.signal).name
            self.result.problems.append(f"worker {proc.slot} pid {proc.popen.pid} ({what}) exited {code}, expected "
                                        f"{expected}: {proc.stderr.read_text()[-1500:]!r}")


def _one(store: Any, sql: str) -> int:
    return int(store.read(sql)[0]["n"])


# -- checking the database against the journals ----------------------------------------------------------------
def verify(res: Result, store: Any) -> None:
    """Every acknowledged row with its acknowledged values; killed runs ended the right way; nothing running."""
    p, f = res.problems, res.figures
    runs = {r["id"]: r for r in store.read(
        "SELECT id, outcome, finished_at, reaped_at, summary_json FROM runs WHERE pipeline LIKE 'soak-%'")}
    steps = {r["id"]: r for r in store.read(
        "SELECT s.id, s.run_id, s.outcome, s.finished_at, s.created_count, s.updated_count, s.skipped_count,"
        " s.failed_count FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.pipeline LIKE 'soak-%'")}
    errors = Counter({(r["run_id"], r["run_step_id"]): int(r["n"]) for r in store.read(
        "SELECT run_id, run_step_id, COUNT(*) AS n FROM run_errors WHERE step_name <> 'crash'"
        " GROUP BY run_id, run_step_id")})
    crashes = Counter({r["run_id"]: int(r["n"]) for r in store.read(
        "SELECT run_id, COUNT(*) AS n FROM run_errors WHERE step_name = 'crash' GROUP BY run_id")})
    lost: Counter[str] = Counter()
    acked: Counter[str] = Counter()
    ended_by: Counter[str] = Counter()
    for proc in res.procs:
        started, ended, acked_steps = [], set(), set()
        acked_errors: Counter[tuple[int, int]] = Counter()
        for line in proc.journal.read_text().splitlines() if proc.journal.exists() else []:
            try:
                kind, *rest = json.loads(line)
            except ValueError:  # a line cut by the kill never had its call acknowledged in full
                continue
            acked[kind] += 1
            if kind == "failed":
                p.append(f"worker {proc.slot}: a call failed: {rest}")
            elif kind == "run":
                started.append(rest[0])
                if rest[0] not in runs:
                    lost["runs"] += 1
            elif kind == "step":
                acked_steps.add(rest[1])
                if steps.get(rest[1], {}).get("run_id") != rest[0]:
                    lost["steps"] += 1
            elif kind == "err":
                acked_errors[(rest[0], rest[1])] += rest[2]
            elif kind == "step_end":
                step = steps.get(rest[1])
                want = (rest[2], *rest[3:])
                got = None if step is None else (step["outcome"], step["created_count"], step["updated_count"],
                                                 step["skipped_count"], step["failed_count"])
                if got != want or step is None or step["finished_at"] is None:
                    lost["step ends"] += 1
                    p.append(f"step {rest[1]} of run {rest[0]}: acknowledged {want}, database {got}")
            elif kind == "end":
                run_id, outcome, n = rest
                ended.add(run_id)
                run = runs.get(run_id)
                if run is None or run["outcome"] != outcome or json.loads(run["summary_json"] or "{}") != {
                        "slot": proc.slot, "n": n}:
                    lost["run ends"] += 1
                    p.append(f"run {run_id}: acknowledged end {outcome} n={n}, database {run}")
                elif run["reaped_at"] is not None:
                    p.append(f"run {run_id} ended by its process was declared lost by the reaper: {run}")
        for key, n in acked_errors.items():
            if errors.get(key, 0) < n:
                lost["errors"] += n - errors.get(key, 0)
                p.append(f"run {key[0]} step {key[1]}: {n} errors acknowledged, {errors.get(key, 0)} in the database")
        for run_id in started:
            if run_id in ended or run_id not in runs:
                continue
            run = runs[run_id]
            summary = json.loads(run["summary_json"] or "{}")
            if run["reaped_at"]:
                how = f"reaper ({str(summary.get('detected_by', '?')).split(' on ')[0]})"
            elif summary.get("crash"):
                how = f"crash hook ({summary.get('kind')})"
            else:
                how = "the end its end_run asked for (not acknowledged yet)"
            ended_by[how] += 1
            sent = signal.Signals(proc.signal).name if proc.signal else "no signal"
            expected = "reaper" if proc.signal == signal.SIGKILL else "crash hook"
            if proc.signal is None or (how.startswith(("reaper", "crash")) and not how.startswith(expected)):
                p.append(f"run {run_id} of worker {proc.slot} ({sent}) ended by the {how}: {run}")
            if how.startswith(("reaper", "crash")) and (run["outcome"] != "failure" or crashes.get(run_id) != 1):
                p.append(f"run {run_id} ({sent}) ended {run['outcome']} with {crashes.get(run_id, 0)} crash rows")
        still_open = [s for s in acked_steps if s in steps and steps[s]["finished_at"] is None]
        if still_open:
            p.append(f"worker {proc.slot}: {len(still_open)} acknowledged steps still open, e.g. {still_open[:3]}")
    f["acknowledged"] = dict(acked)
    f["rows_lost"] = sum(lost.values())
    f["rows_lost_by_kind"] = dict(lost)
    f["killed_open_runs_ended_by"] = dict(ended_by)
    f["kills"] = dict(Counter(signal.Signals(x.signal).name for x in res.procs if x.signal))
    f["runs_ended_acknowledged"] = acked["end"]
    f["runs_per_s"] = round(acked["end"] / res.seconds, 1) if res.seconds else 0.0
    f["runs_in_database"] = len(runs)
    if lost:
        p.append(f"rows lost: {dict(lost)}")
    if f.get("running_after_last_reap"):
        p.append(f"{f['running_after_last_reap']} runs left running after the last reap")
    redacted = redaction_active()
    stored = _one(store, f"SELECT COUNT(*) AS n FROM run_errors WHERE error_message LIKE '%{SECRET}%'"
                         f" OR error_stack LIKE '%{SECRET}%'")
    f["planted_secrets_stored"] = stored if redacted else None
    f["planted_secret_rows_unredacted"] = stored
    if redacted and stored:
        p.append(f"{stored} error rows still hold the planted secret")


def redaction_active() -> bool:
    """Whether the tracker soaked redacts secrets (`sanitize` cleans every stored text): if not, the planted
    secrets are stored as written and that figure is left out."""
    from runtracker.base import sanitize

    return SECRET not in sanitize.text("timeout calling https://admin:" + SECRET + "@crm.internal/", 200)


# -- databases and report ---------------------------------------------------------------------------------------
def pg_schema_url(server: str, schema: str) -> str:
    return f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema}"


def soak_backend(backend: str, seconds: float, pause_ms: float, src: Path, keep: bool, log: Any) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix=f"runtracker-soak-{backend}-"))
    schema = f"rt_soak_{uuid.uuid4().hex[:10]}"
    server = os.environ.get(PG_ENV) or PG_DEFAULT
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'dashboard.sqlite'}"
    else:
        import psycopg

        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        url = pg_schema_url(server, schema)
    try:
        log(f"{backend}: soaking for {seconds:g} s in {workdir}")
        return Soak(backend, url, workdir, seconds, pause_ms, src, log).run()
    finally:
        if keep:
            log(f"{backend}: kept {workdir}" + (f" and schema {schema}" if backend != "sqlite" else ""))
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
            if backend != "sqlite":
                import psycopg

                with psycopg.connect(server, autocommit=True) as admin:
                    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def summary(res: Result) -> dict[str, Any]:
    f = res.figures
    (size0, _, runs0), (size1, wal1, runs1) = res.size[0], res.size[-1]
    per_run = (size1 - size0) / (runs1 - runs0) if runs1 > runs0 else float("nan")
    rss = {name: {"start_mb": round(v[0], 1), "end_mb": round(v[-1], 1), "growth_mb": round(v[-1] - v[0], 1),
                  "growth_pct": round((v[-1] - v[0]) / v[0] * 100, 1)} for name, v in res.rss.items()}
    return {"backend": res.backend, "seconds": round(res.seconds), "runs_per_s": f["runs_per_s"],
            "runs_ended": f["runs_ended_acknowledged"], "runs_in_database": f["runs_in_database"],
            "kills": f["kills"], "killed_open_runs_ended_by": f["killed_open_runs_ended_by"],
            "reaped_by_monitor": f["reaped_by_monitor"], "reaped_by_last_reap": f["reaped_by_last_reap"],
            "running_after_last_reap": f["running_after_last_reap"], "rows_lost": f["rows_lost"],
            "acknowledged": f["acknowledged"], "rss": rss,
            "db_bytes": {"start": size0, "end": size1, "runs_start": runs0, "runs_end": runs1,
                         "bytes_per_run": round(per_run), "mb_per_1000_runs": round(per_run * 1000 / 2**20, 2)}
            | ({"wal_end": wal1, "wal_max": res.wal_max} if res.backend == "sqlite" else {}),
            "planted_secrets_stored": f["planted_secrets_stored"],
            "planted_secret_rows_unredacted": f["planted_secret_rows_unredacted"], "problems": len(res.problems)}


def report(rows: list[dict[str, Any]], pause_ms: float) -> str:
    lines = [f"{WORKERS} workers loop runs (2-5 steps, a pause of 0-{2 * pause_ms:g} ms in each, errors one by one "
             f"and in batches) while one of them gets a random SIGKILL/SIGTERM/SIGINT/SIGHUP every "
             f"{KILL_EVERY_S[0]:g}-{KILL_EVERY_S[1]:g} s and is restarted; one long-lived worker is never killed; "
             f"`runtracker monitor --interval {MONITOR_INTERVAL_S:g}` reaps; heartbeat {HEARTBEAT_S:g} s.", "",
             "| | goal | " + " | ".join(f"{r['backend']} ({r['seconds'] / 60:.0f} min)" for r in rows) + " |",
             "|---|---|" + "---|" * len(rows)]

    def row(name: str, goal: str, cell: Any) -> None:
        lines.append(f"| {name} | {goal} | " + " | ".join(str(cell(r)) for r in rows) + " |")

    def rss(name: str) -> Any:
        return lambda r: (f"{r['rss'][name]['start_mb']:.1f} → {r['rss'][name]['end_mb']:.1f} MB "
                          f"({r['rss'][name]['growth_mb']:+.1f} MB, {r['rss'][name]['growth_pct']:+.1f} %)")

    row("runs ended (acknowledged) / runs/s", "—", lambda r: f"{r['runs_ended']:,} / {r['runs_per_s']:.1f}")
    row("kills", "—", lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["kills"].items())))
    row("killed runs ended by", "hooks for TERM/INT/HUP, reaper for KILL",
        lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["killed_open_runs_ended_by"].items())))
    row("reaped by the monitor / by the last `reap`", "—",
        lambda r: f"{r['reaped_by_monitor']} / {r['reaped_by_last_reap']}")
    row("runs left `running` after the last reap", "0", lambda r: r["running_after_last_reap"])
    row("rows lost (acknowledged calls not in the database as acknowledged)", "0",
        lambda r: f"{r['rows_lost']} of {sum(v for k, v in r['acknowledged'].items() if k != 'failed'):,}")
    row("calls the guard swallowed", "0", lambda r: r["acknowledged"].get("failed", 0))
    row("RSS of `runtracker monitor`, warm-up → end", "flat", rss("monitor"))
    row("RSS of the long-lived worker, warm-up → end", "flat", rss("long-lived worker"))
    row("database (SQLite: without its WAL), warm-up → end", "—", lambda r: f"{r['db_bytes']['start'] / 2**20:.1f} → "
        f"{r['db_bytes']['end'] / 2**20:.1f} MB ({r['db_bytes']['runs_start']:,} → {r['db_bytes']['runs_end']:,} runs)")
    row("bytes per run (MB per 1,000 runs)", "—",
        lambda r: f"{r['db_bytes']['bytes_per_run']:,} ({r['db_bytes']['mb_per_1000_runs']:.2f})")
    if any("wal_max" in r["db_bytes"] for r in rows):
        row("SQLite WAL at the end / largest seen", "bounded", lambda r: f"{r['db_bytes']['wal_end'] / 2**20:.1f}"
            f" / {r['db_bytes']['wal_max'] / 2**20:.1f} MB" if "wal_max" in r["db_bytes"] else "—")
    row("planted secrets stored", "0", lambda r: "n/a (no redaction yet: "
        f"{r['planted_secret_rows_unredacted']:,} rows hold it)" if r["planted_secrets_stored"] is None
        else r["planted_secrets_stored"])
    row("problems", "none", lambda r: r["problems"] or "none")
    return "\n".join(lines)


def describe(src: Path) -> str:
    """Which runtracker is soaked: its commit, and whether src/ differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"from {src}"
    dirty = git("status", "--porcelain", "--", ".")
    return f"commit {commit}" + (" with uncommitted changes in src/" if dirty else "") + f" ({src})"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "worker":
        worker(args[1], args[2], args[3], float(args[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="per backend (default 30)")
    parser.add_argument("--seconds", type=float, help="per backend, instead of --minutes")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pause-ms", type=float, default=10.0, help="mean pause inside each step (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the PostgreSQL schema")
    parser.add_argument("--src", type=Path, default=SRC,
                        help="the runtracker to soak: a src/ directory (default this checkout's; e.g. a clone of a "
                             "commit, while others change this one)")
    opts = parser.parse_args(args)
    seconds = opts.seconds if opts.seconds is not None else opts.minutes * 60
    backends = ["sqlite", "postgresql"] if opts.backend == "both" else [opts.backend]
    src = opts.src.resolve()
    sys.path.insert(0, str(src))
    sys.path.insert(0, str(HERE))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # SIGTERM and SIGHUP end the driver like Ctrl-C: through the `finally` that kills every child. Started in the
    # background (`nohup ... &`), the driver inherits SIGINT, SIGQUIT and SIGHUP ignored, and its workers would
    # too: an ignored signal stays ignored (as runtracker leaves it), so the killer's SIGINT and SIGHUP would
    # kill nothing. The workers must start as a pipeline normally does, with the default dispositions.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    soaked = describe(src)
    log(f"soaking runtracker {soaked}")
    results = [soak_backend(b, seconds, opts.pause_ms, src, opts.keep, log) for b in backends]
    rows = [summary(r) for r in results]
    text = f"runtracker soaked: {soaked}.\n\n" + report(rows, opts.pause_ms)
    print(text)
    for res in results:
        for msg in res.problems[:20]:
            print(f"PROBLEM {res.backend}: {msg}")
    if opts.backend == "both" and seconds >= 600:
        _write_results(text, rows, seconds)
    print(json.dumps({r["backend"]: r for r in rows}))
    return 1 if any(r.problems for r in results) else 0


def _write_results(text: str, rows: list[dict[str, Any]], seconds: float) -> None:
    from datetime import UTC, datetime

    import psycopg
    from benchlib import machine, write_section

    with psycopg.connect(os.environ.get(PG_ENV) or PG_DEFAULT) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    where = ", ".join(f"{k} {v}" for k, v in machine().items())
    write_section("soak", f"## Soak (`make bench-soak`), {datetime.now(UTC):%Y-%m-%d}, {seconds / 60:g} minutes per "
                          f"backend\n\n{where}; PostgreSQL {version} on the same machine. Shared by other work: "
                          f"runs/s is this machine under this load, not a benchmark.\n\n{text}\n\n```json\n"
                          f"{json.dumps({r['backend']: r for r in rows})}\n```")


if __name__ == "__main__":
    sys.exit(main())
