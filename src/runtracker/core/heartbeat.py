"""While a process has runs open: a heartbeat that says it is alive.

**The heartbeat** is one daemon thread per process (however many runs and trackers), started by the first run
that opens and ending by itself once no run is open. Every interval (default 10 s, $RUNTRACKER_HEARTBEAT_S) it
sets `heartbeat_at` on every open run of the process, one transaction per database. A daemon thread keeps
beating while the main thread is inside a long C call or an event loop is blocked: C calls such as sleeping,
waiting on I/O or running an SQLite query release the GIL. (A C call that holds the GIL for longer than the
reaper's heartbeat timeout stops every thread; only a reaper on another host, which cannot check the pid,
could then be misled.) Being a daemon, it never delays the process's exit.

The heartbeat opens the process's crash file (`runtracker.core.crashfile`) as a run opens, and closes it when
it ends for want of open runs: both follow the same "a run is open" under one lock.

It is an object of the process state (`runtracker.core.state`), which resets it in a forked child: the parent's
thread does not exist there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from ..base.clock import now_iso
from ..base.guard import report
from ..storage import Runs, Store
from .crashfile import CrashFile
from .liveness import Identity

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("runtracker")

THREAD_NAME = "runtracker-heartbeat"


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
