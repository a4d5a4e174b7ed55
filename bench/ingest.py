"""The ingest API under load: 8 clients x 500 runs over HTTP into a real `runtracker serve`, SQLite and PostgreSQL.

    python bench/ingest.py            # 8 clients x 500 runs on each backend; writes bench/RESULTS.md's `ingest`
    python bench/ingest.py --quick    # 8 clients x 50 runs: a fast check (RESULTS.md untouched)
    python bench/ingest.py --quick --api-rate 0   # without the per-key rate limit: what the server itself does
    make bench-ingest

Each client is a thread of this process with its own API key and one keep-alive HTTP/1.1 connection
(http.client, no dependency). A run is five requests, as a Node.js pipeline makes them: POST /api/runs, POST a
step, PATCH the step's end with counts, POST an error, POST the end. Every request carries an Idempotency-Key
and is retried with it (after a dropped connection, a 5xx, or a 429's Retry-After), so a retry never records
twice. The server runs with its default limits (50 requests a second per key, bursts of 100), so 8 clients
get at most 400 requests (80 runs) a second in the long run: a server faster than that shows 429s, and
`--api-rate 0` measures the server alone.

Each client keeps what the server acknowledged (run ids, step ids, errors recorded); afterwards the database is
compared with it: every acknowledged run must be there, `success`, with its step ended and its counts and its
error (rows lost: goal 0), and nothing more (rows doubled: goal 0). Throughput is runs per second over the wall
time of all clients. PostgreSQL: $RUNTRACKER_BENCH_PG (default the local test server), schema bench_ingest,
dropped afterwards. The server and the clients share the machine's cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from benchlib import machine, write_section  # noqa: E402

from runtracker.storage import open_store  # noqa: E402
from runtracker.storage.auth import Auth  # noqa: E402
from runtracker.web import passwords  # noqa: E402

PG_URL = os.environ.get("RUNTRACKER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "bench_ingest"
CLIENTS = 8
RUNS = {"full": 500, "quick": 50}
REQUESTS_PER_RUN = 5
MAX_TRIES = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """One pipeline's client: a key, a connection, and what the server acknowledged."""

    def __init__(self, number: int, port: int, key: str) -> None:
        self.number = number
        self.port = port
        self.key = key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.acked: list[tuple[int, int, int]] = []  # (run id, step id, errors recorded)
        self.requests = 0
        self.retries = 0
        self.limited = 0
        self.error: str | None = None
        self._seq = 0

    def call(self, method: str, path: str, body: Any) -> dict[str, Any]:
        """One request, retried with the same Idempotency-Key until it is acknowledged."""
        self._seq += 1
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                   "Idempotency-Key": f"c{self.number}-{self._seq}"}
        payload = json.dumps(body).encode()
        for _ in range(MAX_TRIES):
            self.requests += 1
            try:
                self.conn.request(method, path, payload, headers)
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.retries += 1
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                continue
            if response.status == 429:
                self.limited += 1
                time.sleep(float(json.loads(data).get("retry_after_s", 1)))
                continue
            if response.status >= 500 or response.status == 409 and b"Idempotency-Key" in data:
                self.retries += 1
                time.sleep(0.05)
                continue
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
            return json.loads(data)  # type: ignore[no-any-return]
        raise RuntimeError(f"{method} {path}: no answer after {MAX_TRIES} tries")

    def run(self, runs: int) -> None:
        try:
            for i in range(runs):
                run_id = self.call("POST", "/api/runs", {"pipeline": f"bench-{self.number}"})["run_id"]
                step_id = self.call("POST", f"/api/runs/{run_id}/steps", {"name": "sync"})["step_id"]
                self.call("PATCH", f"/api/runs/{run_id}/steps/{step_id}",
                          {"outcome": "success", "created": i, "updated": 1, "skipped": 2})
                recorded = self.call("POST", f"/api/runs/{run_id}/errors",
                                     {"message": "member not found", "member_identifier": f"KNVB{i}",
                                      "step_id": step_id})["recorded"]
                self.call("POST", f"/api/runs/{run_id}/end", {"outcome": "success", "stats": {"i": i}})
                self.acked.append((run_id, step_id, recorded))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.conn.close()


def pg_schema_url() -> str:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{PG_SCHEMA}"')
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{PG_SCHEMA}"


def drop_pg_schema() -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')


def keys(db_url: str) -> list[str]:
    store = open_store(db_url)
    try:
        made = []
        for n in range(CLIENTS):
            key = passwords.new_api_key()
            auth = Auth(store)
            auth.set_write_scope(auth.add_api_key(f"bench-{n}", passwords.key_hash(key)), ["*"])
            made.append(key)
        return made
    finally:
        store.close()


def serve(db_url: str, log_path: Path, api_rate: float | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    rate = [] if api_rate is None else ["--api-rate", f"{api_rate:g}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNTRACKER_WEB_SECRET": "bench-ingest-" + "s" * 32}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "runtracker", "serve", "--db", db_url, "--host", "127.0.0.1",
                                 "--port", str(port), *rate], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log_path.read_text()}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not answer: {log_path.read_text()}")


def check(db_url: str, clients: list[Client]) -> dict[str, int]:
    """Compare what the clients were told with what the database holds."""
    store = open_store(db_url)
    try:
        runs = {int(r["id"]): r for r in store.read("SELECT id, outcome, total_created FROM runs")}
        steps = {int(s["id"]): s for s in store.read("SELECT id, run_id, outcome, created_count FROM run_steps")}
        errors: dict[int, int] = {}
        for row in store.read("SELECT run_id, COUNT(*) AS n FROM run_errors GROUP BY run_id"):
            errors[int(row["run_id"])] = int(row["n"])
    finally:
        store.close()
    acked = [a for c in clients for a in c.acked]
    lost = 0
    for run_id, step_id, recorded in acked:
        run, step = runs.get(run_id), steps.get(step_id)
        ok = (run is not None and run["outcome"] == "success" and step is not None and step["run_id"] == run_id
              and step["outcome"] == "success" and errors.get(run_id, 0) >= recorded == 1)
        lost += 0 if ok else 1
    doubled = (len(runs) - len(acked)) + (len(steps) - len(acked)) + (sum(errors.values()) - len(acked))
    return {"acknowledged": len(acked), "rows_lost": lost, "rows_doubled": doubled}


def bench(backend: str, runs: int, workdir: Path, api_rate: float | None) -> dict[str, Any]:
    db_url = f"sqlite:///{workdir / 'ingest.sqlite'}" if backend == "sqlite" else pg_schema_url()
    try:
        made = keys(db_url)
        proc, port = serve(db_url, workdir / f"serve-{backend}.log", api_rate)
        try:
            clients = [Client(n, port, made[n]) for n in range(CLIENTS)]
            threads = [threading.Thread(target=c.run, args=(runs,)) for c in clients]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(10)
        failures = [c.error for c in clients if c.error]
        result = {"backend": backend, "clients": CLIENTS, "runs_per_client": runs, "api_rate": api_rate,
                  "wall_s": round(wall, 2),
                  "runs_per_s": round(sum(len(c.acked) for c in clients) / wall, 1),
                  "requests_per_s": round(sum(c.requests for c in clients) / wall, 1),
                  "retries": sum(c.retries for c in clients), "rate_limited": sum(c.limited for c in clients),
                  "client_failures": failures, **check(db_url, clients)}
        return result
    finally:
        if backend == "postgresql":
            drop_pg_schema()


def report(results: list[dict[str, Any]]) -> str:
    lines = ["## The ingest API under load (`make bench-ingest`)", "",
             f"{CLIENTS} clients (threads, one API key and one keep-alive connection each) x "
             f"{results[0]['runs_per_client']} runs over HTTP into `runtracker serve` ({limits(results[0])}); a run is "
             f"{REQUESTS_PER_RUN} requests (open, step, step end, error, end), each with an Idempotency-Key. "
             "Goal: 0 rows lost, 0 doubled.", "",
             "| backend | runs/s | requests/s | wall | acknowledged runs | rows lost | rows doubled | retries | 429s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['runs_per_s']} | {r['requests_per_s']} | {r['wall_s']} s | "
                     f"{r['acknowledged']} | {r['rows_lost']} | {r['rows_doubled']} | {r['retries']} | "
                     f"{r['rate_limited']} |")
    m = machine()
    lines += ["", f"Measured on {m['nproc']} cores ({m['cpu']}), {m['python']}, SQLite {m['sqlite']}, {m['os']}; "
              "the server and the clients share the cores."]
    return "\n".join(lines)


def limits(result: dict[str, Any]) -> str:
    rate = result.get("api_rate")
    if rate is None:
        return "default limits: 50 requests a second per key, so at most 80 runs a second for 8 keys"
    return "no rate limit" if not rate else f"--api-rate {rate:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 clients x 50 runs; RESULTS.md is left alone")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--api-rate", type=float, default=None,
                        help="the server's --api-rate (requests a second per key; 0: no limit); default: its own")
    args = parser.parse_args()
    runs = RUNS["quick" if args.quick else "full"]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for backend in args.backends.split(","):
            result = bench(backend, runs, Path(tmp), args.api_rate)
            print(f"{backend}: {result['runs_per_s']} runs/s, {result['requests_per_s']} requests/s, "
                  f"{result['acknowledged']} acknowledged, {result['rows_lost']} lost, "
                  f"{result['rows_doubled']} doubled, {result['retries']} retries, {result['rate_limited']} 429s",
                  flush=True)
            results.append(result)
    if not args.quick:
        write_section("ingest", report(results))
    print(json.dumps(results))
    ok = all(r["rows_lost"] == 0 and r["rows_doubled"] == 0 and not r["client_failures"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
