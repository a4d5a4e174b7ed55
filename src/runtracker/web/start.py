"""The Start button: the pipeline's configured command through `runtracker exec --lock`, detached.

The wrapper runs in a session of its own (`start_new_session`), with no terminal and its output to
/dev/null (its tail is kept with the run), so a restart of the server — or Ctrl-C in its terminal — does not
reach it; under systemd the dashboard's unit needs `KillMode=process` for the same (docs/dashboard.md). A
thread of the server waits for it, so it never lingers as a zombie. The database reaches it through
$RUNTRACKER_DB rather than `--db`: a PostgreSQL password in an argument would be in `ps` for every user.

The wrapper gets a documented environment, not the server's (`start_environment`): the server's may hold
its session secret, a database password of its own, anything its unit file set. The pipeline gets what a
program needs to run (PATH, HOME, the locale, TZ, Python's own paths), the RUNTRACKER_* settings (the web
secret never) and the names the operator passes on (`serve --pass-env NAME`, globs allowed).

"Already running" is answered twice: before starting (a `running` run of the pipeline, whoever started it:
a Python pipeline, `runtracker exec`, the original tool) and by exec's lock itself, which settles a race of
two starts at once (the loser exits 75 at once, recording nothing).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..exec.command import EXIT_LOCKED, STARTED_BY_ENV, locked_argv
from ..settings.pipelines import PipelineConfig
from ..settings.values import DB_ENV
from ..settings.web import SECRET_ENV
from ..storage.dashboard import Dashboard

# What a started pipeline gets of the server's environment (docs/dashboard.md), besides `serve --pass-env`.
# The network's settings are passed too: a pipeline behind a proxy, or trusting a private CA, works as the
# server does.
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH",
              "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
              "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
PASSED_PREFIXES = ("LC_", "RUNTRACKER_")
NEVER_PASSED = (SECRET_ENV,)

# How long a start waits to see the run appear (or the wrapper give up) before answering.
SETTLE_S = 5.0


class StartResult:
    """`status`: "started", "running" (already: `run` is the running one), "not_configured"."""

    __slots__ = ("status", "run_id", "pid", "exit_code")

    def __init__(self, status: str, run_id: int | None = None, pid: int | None = None,
                 exit_code: int | None = None) -> None:
        self.status = status
        self.run_id = run_id
        self.pid = pid
        self.exit_code = exit_code

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "run_id": self.run_id, "pid": self.pid, "exit_code": self.exit_code}


def command_of(config: PipelineConfig, pipeline: str) -> tuple[str, ...] | None:
    configured = config.pipelines.get(pipeline)
    return configured.command if configured is not None else None


def start_environment(environ: Mapping[str, str], pass_env: Iterable[str] = ()) -> dict[str, str]:
    """The environment a started pipeline gets: PASSED_ENV, the LC_* and RUNTRACKER_* names, and the names (or
    globs) in `pass_env`; never NEVER_PASSED."""
    patterns = tuple(pass_env)
    return {name: value for name, value in environ.items() if name not in NEVER_PASSED and (
        name in PASSED_ENV or name.startswith(PASSED_PREFIXES) or
        any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns))}


def start(dash: Dashboard, config: PipelineConfig, pipeline: str, started_by: str, db: str | None,
          pass_env: Iterable[str] = ()) -> StartResult:
    """Start the pipeline's command unless a run of it is running; wait a moment to learn its run id."""
    if command_of(config, pipeline) is None:
        return StartResult("not_configured")
    running = dash.running_run(pipeline)
    if running is not None:
        return StartResult("running", run_id=int(running["id"]))
    argv = locked_argv(pipeline, os.path.abspath(config.path) if config.path else None)
    env = start_environment(os.environ, pass_env)
    env[STARTED_BY_ENV] = started_by
    if db:
        env[DB_ENV] = db
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    threading.Thread(target=proc.wait, name=f"runtracker-start-{proc.pid}", daemon=True).start()
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code == EXIT_LOCKED:
            holder = dash.running_run(pipeline)
            return StartResult("running", run_id=int(holder["id"]) if holder else None, exit_code=code)
        run = dash.run_of_process(pipeline, proc.pid)
        if run is not None:
            return StartResult("started", run_id=int(run["id"]), pid=proc.pid, exit_code=code)
        if code is not None:  # it ended without a run (e.g. the database could not be opened)
            return StartResult("started", pid=proc.pid, exit_code=code)
        time.sleep(0.05)
    return StartResult("started", pid=proc.pid)
