"""Helpers for tests: databases per backend, a real subprocess running a small app, reading rows back, and the
one way a test waits for something."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pg_schemas
from runtracker.base.clock import now_ms
from runtracker.storage import Runs, Store, open_store

# Every test taking `db_url` runs on both; PostgreSQL gets a schema of its own per test (see pg_schemas).
BACKENDS = ["sqlite", "postgresql"]

SRC = str(Path(__file__).resolve().parent.parent / "src")

T = TypeVar("T")


def make_db_url(backend: str, tmp_path: Path, test_name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'dashboard.sqlite'}"
    if backend == "postgresql":
        return pg_schemas.new_schema_url(test_name)
    raise ValueError(backend)


def drop_db_url(url: str) -> None:
    if url.startswith("postgresql://"):
        pg_schemas.drop_schema_url(url)


def open_fresh(url: str) -> Store:
    """A store of its own (not the process's cached one), for reading what a subprocess wrote."""
    return open_store(url)


class Db:
    """Read-only view of a test database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _with(self, fn: Any) -> Any:
        store = open_fresh(self.url)
        try:
            return fn(store)
        finally:
            store.close()

    def runs(self) -> list[dict[str, Any]]:
        return self._with(lambda s: list(reversed(Runs(s).list_runs(limit=100000))))

    def run(self, run_id: int | None = None) -> dict[str, Any]:
        runs = self.runs()
        return runs[-1] if run_id is None else next(r for r in runs if r["id"] == run_id)

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        return self._with(lambda s: Runs(s).list_steps(run_id))

    def errors(self, run_id: int) -> list[dict[str, Any]]:
        return self._with(lambda s: Runs(s).list_errors(run_id))

    def crash_rows(self, run_id: int) -> list[dict[str, Any]]:
        return [e for e in self.errors(run_id) if e["step_name"] == "crash"]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self._with(lambda s: s.read(sql, params))


def run_app(tmp_path: Path, code: str, db_url: str, *, args: list[str] | None = None,
            env: dict[str, str] | None = None, timeout: float = 60, **popen: Any) -> subprocess.CompletedProcess[str]:
    """Write `code` to app.py in tmp_path and run it in a real subprocess with RUNTRACKER_DB=db_url."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(app), *(args or [])], env=app_env(db_url, env), text=True,
                          capture_output=True, timeout=timeout, cwd=tmp_path, **popen)


def start_app(tmp_path: Path, code: str, db_url: str, *, env: dict[str, str] | None = None,
              name: str = "app.py") -> subprocess.Popen[str]:
    app = tmp_path / name
    app.write_text(textwrap.dedent(code))
    return subprocess.Popen([sys.executable, str(app)], env=app_env(db_url, env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)


def app_env(db_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["RUNTRACKER_DB"] = db_url
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    env.update(extra or {})
    return env


def wait_until(predicate: Callable[[], T], what: str, timeout: float = 120, interval: float = 0.05) -> T:
    """Poll until `predicate()` is truthy and return that value; past `timeout` seconds, fail naming `what`.

    A bound on waiting, not an assertion about speed: the timeout is generous, and giving up is a failure
    (AssertionError with the last value the predicate returned), never a silent return. Generous means for a
    loaded machine: 30 s was too short beside CPU hogs and other suites (a monitor process's first pass, a first
    Apprise send), and a passing test never waits it out (docs/development.md, "The suite under load").
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s; the last value was {value!r}")
        time.sleep(interval)


def kill_2s_in(owner_proc: subprocess.Popen[str], started_ms: int, ready_ms: int) -> int:
    """SIGKILL the owner 2 s into its run, and at least 1.5 s after it said its run was open (`ready_ms`: on a
    loaded machine its first start_run may take a second to write the row a reaper must see first); the moment
    of the kill (ms since the epoch)."""
    at = max(started_ms + 2000, ready_ms + 1500)
    wait_until(lambda: now_ms() >= at, "the moment to kill the owner", interval=0.005)
    killed_ms = now_ms()
    os.kill(owner_proc.pid, signal.SIGKILL)
    owner_proc.wait()
    return killed_ms


def dead_pid() -> int:
    """The pid of a process that has exited and been waited for."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
