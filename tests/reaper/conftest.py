"""Fixtures for the reaper's tests: fast heartbeats, where faulthandler files go, and pipelines that really die.

"Another host" is simulated with $RUNTRACKER_HOSTNAME in the owner's environment (or a row written with another
hostname through the store): the reaper in the test process keeps the machine's real name.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import open_fresh, start_app
from runtracker.storage import Store

# Beat fast so that a test never waits long; the reaper's timeout in tests is a multiple of this.
HEARTBEAT_S = "0.1"

OWNER = """
import os, sys, time, ctypes, asyncio
from runtracker import RunTracker
tracker = RunTracker("nikki")
run_id = tracker.start_run()
done = tracker.start_step("nikki-download")
tracker.end_step(done, "success", created=7, updated=2)
step = tracker.start_step("nikki-sync")
print(run_id, flush=True)
"""


@pytest.fixture
def crash_dir(db_url: str, tmp_path: Path) -> Path:
    """Where faulthandler files go: the SQLite database's directory; for PostgreSQL $RUNTRACKER_CRASH_DIR."""
    if db_url.startswith("sqlite"):
        return Path(db_url[len("sqlite:///"):]).parent
    return tmp_path / "crash"


@pytest.fixture
def owner_env(db_url: str, crash_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of owners (subprocesses) and of this process alike."""
    env = {"RUNTRACKER_HEARTBEAT_S": HEARTBEAT_S}
    if not db_url.startswith("sqlite"):
        env["RUNTRACKER_CRASH_DIR"] = str(crash_dir)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RUNTRACKER_HOSTNAME", raising=False)
    monkeypatch.delenv("RUNTRACKER_HEARTBEAT_TIMEOUT_S", raising=False)
    return env


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store of the test's own, for writing rows directly and reading back."""
    s = open_fresh(db_url)
    try:
        yield s
    finally:
        s.close()


class Owner:
    """A pipeline in a real subprocess that has started a run and is inside its step `nikki-sync`."""

    def __init__(self, proc: subprocess.Popen[str], run_id: int) -> None:
        self.proc = proc
        self.run_id = run_id

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


@pytest.fixture
def start_owner(tmp_path: Path, db_url: str, owner_env: dict[str, str]) -> Iterator[Callable[..., Owner]]:
    """Start OWNER + `code` in a subprocess and wait until its run is open."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str = "", env: dict[str, str] | None = None, name: str = "app.py") -> Owner:
        proc = start_app(tmp_path, OWNER + code, db_url, env={**owner_env, **(env or {})}, name=name)
        started.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.strip().isdigit():
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the owner did not start its run: {line}{out}\n{err}")
        return Owner(proc, int(line))

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
