"""PostgreSQL goes away and comes back under a tracked pipeline: rows lost, phantom runs, time to the correct row.

A pipeline process runs short tracked runs back to back (a step, two errors, then `end_run` alternately
`success` and `partial`, with its number in the stats) and prints what it asked, when. Meanwhile the server is:

1. restarted for real, twice: `pg_ctl stop -m fast`, an outage of `--outage` seconds, `pg_ctl start` (a
   restart here takes about 13 s with everyone's processes connected; the outage stands in for that);
2. made to drop the pipeline's connections at their COMMIT for `--drop-seconds`: `pg_terminate_backend` of its
   backends whose query is a COMMIT, in a tight loop; and, as the pipeline reaches the server through a TCP proxy
   (tests/storage/tcp_proxy.py), every 100 ms the answer to its next COMMIT is thrown away with the connection
   after the server committed: a write that committed whose answer is lost.

The server is a private one (initdb into a temporary directory, its own port), so restarting it disturbs no
other user of the machine's PostgreSQL; `--cluster 15/main` restarts that cluster instead (`pg_ctlcluster`:
every client of it sees the restart), and without initdb/pg_ctl or root only phase 2 runs.

A watcher polls the database every 50 ms and notes when each run's row first shows the end its pipeline asked
for. After the pipeline exited (and `runtracker reap` ran), it reports:
- rows lost: runs the pipeline asked for whose row is missing or ended otherwise than asked (goal 0);
- phantom runs: rows the pipeline never asked for (a start written twice, goal 0);
- time to the correct row: for ends asked while the server was away, from the server's return to the row
  showing that end (goal ≤ 5 s; max and median).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The private server waits 5 ms before flushing each commit (as a busy server's group commit does): a backend
# terminated in that window has committed, and its client gets the error instead of the answer. On a fast
# disk the window is otherwise too short for the drops to hit it.
COMMIT_WINDOW = "-c commit_delay=5000 -c commit_siblings=0"

PIPELINE = r"""
import json, sys, time
from runtracker import RunTracker
from runtracker.base.clock import now_ms

if len(sys.argv) > 2:
    import faulthandler
    faulthandler.dump_traceback_later(2, repeat=True)
t = RunTracker("outage-bench")
stop_at = time.time() + float(sys.argv[1])
i = 0
while time.time() < stop_at:
    outcome = "success" if i % 2 == 0 else "partial"
    started = now_ms()
    t.start_run()
    step = t.start_step("work")
    t.record_errors("work", step, [f"row {i}-a", f"row {i}-b"])
    t.end_step(step, "success", created=2)
    asked = now_ms()
    written = t.end_run(outcome, {"i": i})
    print(json.dumps({"i": i, "outcome": outcome, "started": started, "asked": asked, "written": written}),
          flush=True)
    i += 1
    time.sleep(0.05)
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServer:
    """A PostgreSQL server of our own in a temporary directory, run as the `postgres` user when we are root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rt-pg-outage-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, text=True)

    def _ctl(self, *args: str) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 {COMMIT_WINDOW}", *args)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class ClusterServer:
    """An existing cluster, restarted with pg_ctlcluster (every client of it sees the restart)."""

    def __init__(self, cluster: str, url: str) -> None:
        self.version, self.name = cluster.split("/")
        self.url = url

    def start(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "start"], check=True)

    def stop(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "stop", "-m", "fast"], check=True)

    def remove(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "start"], check=False)


def connect(url: str):  # noqa: ANN201
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=2)


class Watcher(threading.Thread):
    """Polls the runs every 50 ms; notes when each run (by its number in the stats) first shows an end."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.first_end: dict[int, tuple[str, int]] = {}  # i -> (outcome, when first seen ended)
        self.stop_flag = threading.Event()

    def run(self) -> None:
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self.url)
                rows = conn.execute("SELECT outcome, summary_json FROM runs WHERE outcome <> 'running'"
                                    " AND summary_json LIKE '%\"i\"%'").fetchall()
                seen = now_ms()
                for outcome, summary in rows:
                    i = json.loads(summary).get("i")
                    if isinstance(i, int) and i not in self.first_end:
                        self.first_end[i] = (outcome, seen)
            except Exception:
                conn = None
            time.sleep(0.05)


def drop_at_commits(url: str, seconds: float) -> int:
    """Terminate the pipeline's backends caught in a COMMIT, in a tight loop: how many were terminated."""
    admin = connect(url)
    dropped = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'runtracker'"
            " AND state = 'active' AND query ILIKE 'commit%'").fetchall()
        dropped += sum(1 for (ok,) in rows if ok)
    admin.close()
    return dropped


def cut_commit_answers(proxy: object, seconds: float) -> None:
    """Every 100 ms, the pipeline's next COMMIT reaches the server and commits, and its answer is thrown away
    with the connection (tests/storage/tcp_proxy.py): the writer cannot know its write committed."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        proxy.cut_after_commit()  # type: ignore[attr-defined]
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=8.0, help="seconds the server stays down per restart")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds between one fault and the next")
    parser.add_argument("--drop-seconds", type=float, default=10.0, help="seconds of drops timed on COMMITs")
    parser.add_argument("--cluster", help="restart this cluster (e.g. 15/main) instead of a private server")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="with --cluster: a database of that cluster the bench may fill")
    args = parser.parse_args()

    restarts_possible = (PG_BIN / "initdb").exists() and (os.geteuid() == 0 or os.getenv("USER") == "postgres")
    server: PrivateServer | ClusterServer | None
    if args.cluster:
        server = ClusterServer(args.cluster, args.url)
        url = args.url
    elif restarts_possible:
        server = PrivateServer()
        server.start()
        url = server.url
    else:
        server, url = None, os.environ.get("RUNTRACKER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
        print("no server of our own to restart: only the drops at COMMIT run", file=sys.stderr)
    schema = f"rt_outage_{os.getpid()}"
    admin = connect(url)
    admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.execute(f"CREATE SCHEMA {schema}")
    admin.close()
    db = f"{url}?options=-csearch_path%3D{schema}"
    sys.path.insert(0, str(ROOT / "tests" / "storage"))
    from tcp_proxy import Proxy

    host, port = url.split("@", 1)[1].split("/", 1)[0].split(":")
    proxy = Proxy(host, int(port))
    through_proxy = proxy.url(db)

    restarts = 2 if server is not None else 0
    length = 4 + restarts * (args.outage + args.settle) + args.drop_seconds + 4
    env = {**os.environ, "RUNTRACKER_DB": through_proxy, "PYTHONPATH": str(ROOT / "src")}
    watcher = Watcher(db)
    debug = ["debug"] if os.environ.get("PG_OUTAGE_DEBUG") else []  # the pipeline's stacks every 2 s
    try:
        # Its log goes to a file: a pipe nobody reads until the end would fill and stall the pipeline.
        log_file = tempfile.TemporaryFile("w+")
        pipeline = subprocess.Popen([sys.executable, "-c", PIPELINE, str(length), *debug], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=log_file)
        watcher.start()
        outages: list[tuple[int, int]] = []  # (down at, back at), ms
        # The outages begin once the pipeline's first run is written (its process started, its schema made):
        # a process whose very first connect fails has no store to keep anything in (see docs/postgresql.md).
        deadline = time.monotonic() + 60
        while not watcher.first_end and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2)
        for _ in range(restarts):
            assert server is not None
            down = now_ms()
            server.stop()
            time.sleep(args.outage)
            server.start()
            outages.append((down, now_ms()))
            time.sleep(args.settle)  # the pipeline settles before the next fault
        cutter = threading.Thread(target=cut_commit_answers, args=(proxy, args.drop_seconds), daemon=True)
        cutter.start()
        dropped = drop_at_commits(db, args.drop_seconds)
        cutter.join()
        out, _ = pipeline.communicate(timeout=length + 120)
        log_file.seek(0)
        err = log_file.read()
        subprocess.run([sys.executable, "-m", "runtracker", "reap", "--db", db], env=env, capture_output=True,
                       check=False)
        time.sleep(0.3)
        watcher.stop_flag.set()
        watcher.join()
        report = check(db, [json.loads(line) for line in out.splitlines() if line.startswith("{")], outages,
                       watcher, dropped, err)
        report["commit_answers_lost"] = proxy.cuts
    finally:
        proxy.close()
        if server is not None:
            server.remove() if isinstance(server, PrivateServer) else server.start()
    print(json.dumps(report))


def check(db: str, asked: list[dict], outages: list[tuple[int, int]], watcher: Watcher, dropped: int,
          err: str) -> dict:
    conn = connect(db)
    rows = conn.execute("SELECT id, outcome, summary_json, started_at, finished_at FROM runs").fetchall()
    conn.close()
    by_i: dict[int, list[tuple]] = {}
    phantoms = 0
    for row in rows:
        try:
            i = json.loads(row[2] or "null")["i"]
        except (TypeError, KeyError, ValueError):
            phantoms += 1  # not an end the pipeline asked for (a start written twice, reaped as lost)
            continue
        by_i.setdefault(i, []).append(row)
    lost = 0
    late: list[float] = []
    for entry in asked:
        found = by_i.get(entry["i"], [])
        if len(found) != 1 or found[0][1] != entry["outcome"]:
            lost += 1
            continue
        outage = next(((down, back) for down, back in outages if down <= entry["asked"] <= back), None)
        if outage is not None:
            seen = watcher.first_end.get(entry["i"])
            late.append(((seen[1] if seen else now_ms()) - outage[1]) / 1000)
    phantoms += sum(len(found) - 1 for found in by_i.values() if len(found) > 1)
    tracebacks = err.count("Traceback")
    if os.environ.get("PG_OUTAGE_DEBUG"):
        missing = [(e["i"], e["asked"], e["written"], [r[1] for r in by_i.get(e["i"], [])]) for e in asked
                   if len(by_i.get(e["i"], [])) != 1 or by_i[e["i"]][0][1] != e["outcome"]]
        zero = outages[0][0] if outages else 0
        print("asked (ms after the first outage)", [(e["i"], e["started"] - zero, e["asked"] - zero, e["written"])
                                                    for e in asked], file=sys.stderr)
        print("outages", outages, "\nmissing", missing[:40], "\n", err, file=sys.stderr)
    report = {
        "runs_asked": len(asked), "rows": len(rows), "rows_lost": lost, "phantom_runs": phantoms,
        "restarts": len(outages), "ends_asked_in_outages": len(late),
        "time_to_correct_row_max_s": round(max(late), 2) if late else None,
        "time_to_correct_row_median_s": round(statistics.median(late), 2) if late else None,
        "drops_at_commit": dropped, "pipeline_tracebacks": tracebacks,
        "goals": {"rows_lost": 0, "phantom_runs": 0, "time_to_correct_row_max_s": 5.0},
    }
    print(f"runs asked {len(asked)}, rows {len(rows)}: lost {lost} (goal 0), phantom {phantoms} (goal 0); "
          f"{len(outages)} restarts, {len(late)} ends asked while down, time to the correct row after the server "
          f"was back: max {report['time_to_correct_row_max_s']} s, median {report['time_to_correct_row_median_s']} s"
          f" (goal <= 5 s); {dropped} connections dropped at COMMIT", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
