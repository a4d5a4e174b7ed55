"""Running `runtracker exec` as a real subprocess, and small Python children for it to run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import app_env

PY = sys.executable


def exec_argv(*args: str, pipeline: str = "nikki") -> list[str]:
    return [PY, "-m", "runtracker", "exec", "--pipeline", pipeline, *args]


def run_exec(tmp_path: Path, db_url: str, *args: str, pipeline: str = "nikki", env: dict[str, str] | None = None,
             timeout: float = 60, **popen: Any) -> subprocess.CompletedProcess[bytes]:
    """Run the wrapper to its end; stdout and stderr as bytes."""
    return subprocess.run(exec_argv(*args, pipeline=pipeline), env=app_env(db_url, env), cwd=tmp_path,
                          capture_output=True, timeout=timeout, **popen)


def start_exec(tmp_path: Path, db_url: str, *args: str, pipeline: str = "nikki",
               env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[bytes]:
    """Start the wrapper in a session of its own (no controlling terminal), output on pipes."""
    popen.setdefault("start_new_session", True)
    return subprocess.Popen(exec_argv(*args, pipeline=pipeline), env=app_env(db_url, env), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def child(tmp_path: Path, code: str, name: str = "child.py") -> list[str]:
    """Write a Python child script; returns the command that runs it."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return [PY, str(path)]


def summary(run: dict[str, Any]) -> dict[str, Any]:
    return json.loads(run["summary_json"]) if run["summary_json"] else {}


@contextlib.contextmanager
def killed_if_stuck(proc: subprocess.Popen[bytes], after: float = 60) -> Iterator[None]:
    """SIGKILL the process group of `proc` (started in a session of its own) if it still runs after `after`
    seconds: a test that would hang on a read fails instead, and leaves no command running."""

    def kill() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(after, kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
