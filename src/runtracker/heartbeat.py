"""While a process has runs open: a heartbeat that says it is alive, and a faulthandler file that says how it died.

**The heartbeat** is one daemon thread per process (however many runs and trackers), started by the first
`start_run` and ending by itself once no run is open. Every interval (default 10 s, $RUNTRACKER_HEARTBEAT_S)
it sets `heartbeat_at` on every open run of the process, one transaction per database. A daemon thread keeps
beating while the main thread is inside a long C call or an event loop is blocked: C calls such as sleeping,
waiting on I/O or running an SQLite query release the GIL. (A C call that holds the GIL for longer than the
reaper's heartbeat timeout stops every thread; only a reaper on another host, which cannot check the pid,
could then be misled.) Being a daemon, it never delays the process's exit.

**The faulthandler file**: while any run is open, `faulthandler` writes the C-level and Python traceback of a
fatal signal (SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL) into a file per process, named after the host, pid and
process start time, in the database's directory (SQLite) or $RUNTRACKER_CRASH_DIR (default: a `runtracker`
folder in the temp directory). The reaper attaches it to the crash row and removes it. faulthandler is
process-wide: if the program (or PYTHONFAULTHANDLER / -X faulthandler) enabled it already, it is left alone.
It is disabled and the empty file removed by the heartbeat thread as it ends (at its first beat with no run
open), or at exit.

Both are reset in a forked child (see `_after_fork_in_child`): the parent's thread does not exist there and
the child's fatal errors are not the parent's runs'.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import logging
import os
import re
import threading
from typing import IO

from . import process
from .config import now_iso
from .guard import report
from .storage import Store

log = logging.getLogger("runtracker")

HEARTBEAT_ENV = "RUNTRACKER_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 10.0
CRASH_DIR_ENV = "RUNTRACKER_CRASH_DIR"
THREAD_NAME = "runtracker-heartbeat"


def interval_s(value: object = None) -> float:
    """The heartbeat interval: argument, else $RUNTRACKER_HEARTBEAT_S, else 10 s."""
    return _positive(value, HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S)


def _positive(value: object, env: str, default: float) -> float:
    if value is None:
        value = os.environ.get(env) or default
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        log.warning("runtracker: %s=%r is not a number of seconds; using %g", env, value, default)
        return default
    if not seconds > 0 or seconds == float("inf"):
        log.warning("runtracker: %s=%r must be a positive number of seconds; using %g", env, value, default)
        return default
    return seconds


# -- the heartbeat thread ---------------------------------------------------------------------------------
_lock = threading.Lock()
_thread: threading.Thread | None = None
_wake = threading.Event()
_interval = DEFAULT_HEARTBEAT_S


def run_opened(store: Store, heartbeat_s: float) -> None:
    """A run of this process just opened on `store`: make sure the heartbeat and the faulthandler file are on."""
    _register_fork_hook()
    global _thread, _interval
    with _lock:
        if _thread is None or not _thread.is_alive():
            _interval = heartbeat_s
            _wake.clear()
            _thread = threading.Thread(target=_beat, name=THREAD_NAME, daemon=True)
            _thread.start()
        elif heartbeat_s < _interval:
            _interval = heartbeat_s  # several trackers asking for different intervals: the shortest wins
            _wake.set()
        # Under the lock that the thread holds while it decides to stop and closes the file (see `_beat`): a
        # file closed by a stopping thread is opened again here, never left closed under an open run.
        _crash_file.open_for(store)


def run_closed() -> None:
    """A run of this process ended normally. Nothing happens at once: with no run open at its next beat, the
    heartbeat thread ends and puts faulthandler back. A pipeline that runs one run after another in one
    process so keeps one thread and one faulthandler file instead of paying for new ones every run (that
    was a third of a short run's cost)."""


def current_thread() -> threading.Thread | None:
    """The heartbeat thread, if one is running (for tests and diagnostics)."""
    with _lock:
        return _thread if _thread is not None and _thread.is_alive() else None


def _beat() -> None:
    global _thread
    failing = False
    while True:
        _wake.wait(_interval)
        _wake.clear()
        # Deciding to stop and `run_opened` deciding whether to start a thread happen under the same lock, and
        # a run is registered before run_opened is called: a run opening now is either seen here or starts a
        # thread of its own. Never both, never neither.
        with _lock:
            runs = process.open_runs()
            if not runs:
                if _thread is threading.current_thread():
                    _thread = None
                    _crash_file.close()
                return
        failing = _touch(runs, failing)


def _touch(runs: list[process.OpenRun], failing: bool) -> bool:
    """One beat: one transaction per database. Returns whether it failed (a failure is logged once, not every
    beat, and the beat goes on: a database that is back gets fresh heartbeats again)."""
    by_store: dict[int, list[process.OpenRun]] = {}
    for run in runs:
        by_store.setdefault(id(run.store), []).append(run)
    at = now_iso()
    failed = False
    for group in by_store.values():
        try:
            group[0].store.touch_heartbeat([run.run_id for run in group], at)
        except Exception as exc:
            failed = True
            if not failing:
                report("writing the heartbeat", exc)
    if failing and not failed:
        log.info("runtracker: heartbeat written again")
    return failed


# -- the faulthandler file ----------------------------------------------------------------------------------
def crash_dir(store: Store) -> str:
    """Where this process's faulthandler file goes for runs on `store` (and where a reaper looks for it)."""
    configured = os.environ.get(CRASH_DIR_ENV)
    if configured:
        return os.path.abspath(configured)
    path = getattr(store, "path", None)
    if store.dialect == "sqlite" and path:
        return os.path.dirname(os.path.abspath(path))
    import tempfile  # here, not at the top: with shutil, lzma and random it is a tenth of `import runtracker`

    return os.path.join(tempfile.gettempdir(), "runtracker")


def crash_file_prefix(hostname: str | None) -> str:
    return "runtracker-crash-" + re.sub(r"[^A-Za-z0-9._-]", "_", hostname or "unknown")[:100] + "-"


def crash_file_name(hostname: str | None, pid: int | None, process_started_at: float | None) -> str:
    """The per-process file name: the owner's host, pid and start time, so a reused pid never gets it."""
    started = int(process_started_at * 1000) if process_started_at else 0
    return f"{crash_file_prefix(hostname)}{pid}-{started}.txt"


class _CrashFile:
    """The process's faulthandler file; hard-linked into the crash directory of every database it has runs on."""

    def __init__(self) -> None:
        self.file: IO[str] | None = None
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def open_for(self, store: Store) -> None:
        try:
            with self.lock:
                if self.file is None:
                    if faulthandler.is_enabled():
                        return  # enabled by the program itself: never take it over
                    self._enable(store)
                else:
                    self._link_into(crash_dir(store))
        except Exception as exc:
            report("enabling faulthandler for the run", exc)

    def _enable(self, store: Store) -> None:
        from .liveness import hostname
        from .tracker import _process_started_at

        directory = crash_dir(store)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, crash_file_name(hostname(), os.getpid(), _process_started_at()))
        file = open(path, "w")  # noqa: SIM115 - stays open for faulthandler until the last run ends
        faulthandler.enable(file=file, all_threads=True)
        self.file, self.paths = file, [path]

    def _link_into(self, directory: str) -> None:
        target = os.path.join(directory, os.path.basename(self.paths[0]))
        if target in self.paths:
            return
        try:
            os.makedirs(directory, exist_ok=True)
            os.link(self.paths[0], target)
            self.paths.append(target)
        except OSError as exc:  # another filesystem: that database's reaper gets no traceback, nothing more
            log.debug("runtracker: cannot link the faulthandler file into %s: %s", directory, exc)

    def close(self) -> None:
        with self.lock:
            if self.file is None:
                return
            try:
                faulthandler.disable()
                self.file.close()
            finally:
                for path in self.paths:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                self.file, self.paths = None, []

    def forget_in_child(self) -> None:
        # The child inherited faulthandler writing into the parent's file: its own fatal errors are not the
        # parent's runs', and without us it would have no faulthandler. The parent's file is left in place.
        self.lock = threading.Lock()
        if self.file is not None:
            with contextlib.suppress(Exception):
                faulthandler.disable()
                self.file.close()
            self.file, self.paths = None, []


_crash_file = _CrashFile()


def _at_exit() -> None:
    # A normal exit: no fatal signal can come any more; the empty file goes (a hard death leaves it to the reaper).
    try:
        _crash_file.close()
    except Exception as exc:
        report("removing the faulthandler file at exit", exc)


def _after_fork_in_child() -> None:
    global _lock, _thread, _wake
    _lock = threading.Lock()
    _thread = None
    _wake = threading.Event()
    _crash_file.forget_in_child()


_fork_hook = False


def _register_fork_hook() -> None:
    global _fork_hook
    if not _fork_hook:
        _fork_hook = True
        os.register_at_fork(after_in_child=_after_fork_in_child)
        atexit.register(_at_exit)


def reset() -> None:
    """For tests, once their runs are forgotten: end the heartbeat thread (waiting for a beat in progress, so
    it never writes to a store being closed) and put faulthandler back."""
    thread = current_thread()
    _wake.set()
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout=15)
    _crash_file.close()
