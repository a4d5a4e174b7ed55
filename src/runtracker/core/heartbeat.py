"""While a process has runs open: a heartbeat that says it is alive, and a faulthandler file that says how it died.

**The heartbeat** is one daemon thread per process (however many runs and trackers), started by the first run
that opens and ending by itself once no run is open. Every interval (default 10 s, $RUNTRACKER_HEARTBEAT_S) it
sets `heartbeat_at` on every open run of the process, one transaction per database. A daemon thread keeps
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
open), or by the exit handler.

Both are objects of the process state (`runtracker.core.state`), which resets them in a forked child: the parent's
thread does not exist there and the child's fatal errors are not the parent's runs'.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence

from ..base.clock import now_iso
from ..base.guard import report
from ..storage import Runs, Store
from .liveness import Identity

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import IO, Any

log = logging.getLogger("runtracker")

CRASH_DIR_ENV = "RUNTRACKER_CRASH_DIR"
THREAD_NAME = "runtracker-heartbeat"


def crash_dir(store: Store) -> str:
    """Where a process's faulthandler file goes for runs on `store` (and where a reaper looks for it)."""
    configured = os.environ.get(CRASH_DIR_ENV)
    if configured:
        return os.path.abspath(configured)
    directory = store.directory
    if directory:
        return directory
    import tempfile  # here, not at the top: with shutil, lzma and random it is a tenth of `import runtracker`

    return os.path.join(tempfile.gettempdir(), "runtracker")


def crash_file_prefix(hostname: str | None) -> str:
    return "runtracker-crash-" + re.sub(r"[^A-Za-z0-9._-]", "_", hostname or "unknown")[:100] + "-"


def crash_file_name(hostname: str | None, pid: int | None, process_started_at: float | None) -> str:
    """The per-process file name: the owner's host, pid and start time, so a reused pid never gets it."""
    started = int(process_started_at * 1000) if process_started_at else 0
    return f"{crash_file_prefix(hostname)}{pid}-{started}.txt"


# The first line of what runtracker itself leaves in the crash file: the end of a run it could not write.
LAST_WORDS = "runtracker: the end of run {run_id} could not be written ({error}): "


class CrashFile:
    """The process's faulthandler file; hard-linked into the crash directory of every database it has runs on.

    runtracker writes into it too, as its last words, an end of a run that it could not write (the database
    locked past the crash timeout, a server away): the reaper, which ends that run later, attaches them to the
    crash row, as it does a segfault's traceback. A file with last words is kept when the process exits.
    """

    def __init__(self) -> None:
        self.file: IO[str] | None = None
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.keep = False  # last words were written: the reaper needs the file

    def open_for(self, store: Store, identity: Identity) -> None:
        try:
            with self.lock:
                if self.file is None:
                    if faulthandler.is_enabled():
                        return  # enabled by the program itself: never take it over
                    self._enable(crash_dir(store), identity)
                else:
                    self._link_into(crash_dir(store))
        except Exception as exc:
            report("enabling faulthandler for the run", exc)

    def _enable(self, directory: str, identity: Identity) -> None:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, crash_file_name(identity.hostname, identity.pid,
                                                       identity.process_started_at))
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

    def last_words(self, store: Store, identity: Identity, text: str) -> None:
        """Append `text` to this process's crash file for `store` (created if faulthandler does not write one),
        flushed to disk: the process may be about to die."""
        with self.lock:
            if self.file is not None:
                self.file.write(text)
                self.file.flush()
                os.fsync(self.file.fileno())
            else:
                directory = crash_dir(store)
                os.makedirs(directory, exist_ok=True)
                path = os.path.join(directory, crash_file_name(identity.hostname, identity.pid,
                                                               identity.process_started_at))
                with open(path, "a") as file:
                    file.write(text)
                    file.flush()
                    os.fsync(file.fileno())
            self.keep = True

    def close(self) -> None:
        """No fatal signal can concern an open run any more: put faulthandler back and remove the empty file (a
        file with last words stays for the reaper)."""
        with self.lock:
            if self.file is None:
                return
            try:
                faulthandler.disable()
                self.file.close()
            finally:
                for path in self.paths if not self.keep else ():
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


class Heartbeat:
    """The process's heartbeat thread. `open_runs()` lists the runs to beat for: when it is empty at a beat, the
    thread ends and closes the crash file."""

    def __init__(self, open_runs: Callable[[], Sequence[Any]], crash_file: CrashFile) -> None:
        self._open_runs = open_runs
        self._crash_file = crash_file
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._interval = 10.0
        self._stopping = False

    def run_opened(self, store: Store, interval_s: float, identity: Identity) -> None:
        """A run of this process just opened on `store` (and is registered): make sure the heartbeat and the
        faulthandler file are on. A pipeline that runs one run after another in one process keeps one thread
        and one faulthandler file instead of paying for new ones every run (that was a third of a short run's
        cost): nothing happens when a run ends; the thread ends at its first beat with no run open."""
        with self._lock:
            if self._stopping:
                return
            if self._thread is None or not self._thread.is_alive():
                self._interval = interval_s
                self._wake.clear()
                self._thread = threading.Thread(target=self._beat, name=THREAD_NAME, daemon=True)
                self._thread.start()
            elif interval_s < self._interval:
                self._interval = interval_s  # several trackers asking for different intervals: the shortest wins
                self._wake.set()
            # Under the lock that the thread holds while it decides to stop and closes the file (see `_beat`): a
            # file closed by a stopping thread is opened again here, never left closed under an open run.
            self._crash_file.open_for(store, identity)

    def thread(self) -> threading.Thread | None:
        """The heartbeat thread, if one is running (for tests and diagnostics)."""
        with self._lock:
            return self._thread if self._thread is not None and self._thread.is_alive() else None

    def stop(self, wait_s: float = 0.0) -> None:
        """End the thread at once (the exit handler, once the runs are ended; tests). `wait_s`: wait for a beat in
        progress, so that it never writes to a store being closed."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if wait_s and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=wait_s)

    def forget_in_child(self) -> None:
        """After fork, in the child: the parent's thread does not exist here."""
        self._lock = threading.Lock()
        self._thread = None
        self._wake = threading.Event()
        self._stopping = False

    def _beat(self) -> None:
        failing = False
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            # Deciding to stop and `run_opened` deciding whether to start a thread happen under the same lock,
            # and a run is registered before run_opened is called: a run opening now is either seen here or
            # starts a thread of its own. Never both, never neither.
            with self._lock:
                runs = [] if self._stopping else self._open_runs()
                if not runs:
                    if self._thread is threading.current_thread():
                        self._thread = None
                        if not self._stopping:
                            self._crash_file.close()
                    return
            failing = self._touch(runs, failing)

    @staticmethod
    def _touch(runs: Sequence[Any], failing: bool) -> bool:
        """One beat: one transaction per database. Returns whether it failed (a failure is logged once, not
        every beat, and the beat goes on: a database that is back gets fresh heartbeats again)."""
        by_store: dict[int, list[Any]] = {}
        for run in runs:
            # A run whose start is not written yet, or not yet written again into a file that replaced its own,
            # has no row to beat for (its id might even name another run in the new file).
            if run.run_id is not None and run.generation == run.store.generation:
                by_store.setdefault(id(run.store), []).append(run)
        at = now_iso()
        failed = False
        for group in by_store.values():
            try:
                Runs(group[0].store).touch_heartbeat([run.run_id for run in group], at)
            except Exception as exc:
                failed = True
                if not failing:
                    report("writing the heartbeat", exc)
        if failing and not failed:
            log.info("runtracker: heartbeat written again")
        return failed
