"""The process state: one object, `STATE`, holds everything runtracker knows about this process.

- the runs this process has open (`OpenRun`), whichever tracker opened them, and on which database; an open
  run changes only through its own methods;
- how the process is ending: the exit code given to `sys.exit`, a signal whose handler is running, the
  uncaught exception the excepthook saw;
- its stores (one per database), its heartbeat thread and its faulthandler file;
- the ring of its last log records, which a crash row gets (`logring`), and what Apprise logs while a channel
  sends (`log_capture`);
- the hooks it installed and the ones they replaced, and its own identity (host, pid, start time);
- the never-raise guard's state (`guard`: `base.guard.GUARD`, which the base layer owns since it imports
  nothing above it) and the dashboard's password hasher;
- its settings as resolved, and the wrong ones already warned about (`settings`).

What else runtracker keeps at module level, all of it named as such (tests/unit/test_architecture.py keeps
new mutable module globals out):

- `base.guard.GUARD`, the guard's part of this state (`STATE.guard` is the same object);
- memo caches, which only save work: `base.clock._second`, `web.grouping.normalise`,
  `web.present._chart_of_finished`, `web.passwords._dummy_hash` (`functools.lru_cache`);
- `core.context._current`, a `ContextVar`: the run of the innermost `with tracker.run()`, per thread and task;
- `settings.state.SETTINGS`, the settings' part of this state (`STATE.settings` is the same object; the
  settings layer imports no core), and `base.redact._current`, the redaction rules built from those settings
  (base imports no settings): both forgotten by `reset`.

After `os.fork()` the child gets a clean slate (`after_fork_in_child`, the one fork hook, registered when this
module is imported): the parent's runs, connections, heartbeat thread and faulthandler file are the parent's.
The one exit handler is `hooks._at_exit`; see there for the order of its steps. `reset` (tests;
`runtracker.testing.reset`) puts the whole process state back in one call, the settings included.
"""

from __future__ import annotations

import os
import threading

from ..base.guard import GUARD, Troubles
from ..base.records import Record
from ..settings.state import SETTINGS
from ..storage import StoreCache
from .crashfile import CrashFile
from .heartbeat import Heartbeat
from .liveness import Identity, hostname, own_identity
from .logring import LogCapture, LogRing

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..storage import Store
    from .ending import Ending

    # An ERROR log record kept on its run until written: (step id, step name, message, stack, at).
    LogRow = tuple[int | None, str, str, str | None, str]


class OpenStep:
    __slots__ = ("step_id", "name", "started_ms")

    def __init__(self, step_id: int, name: str, started_ms: int) -> None:
        self.step_id = step_id
        self.name = name
        self.started_ms = started_ms  # its started_at, in milliseconds


class OpenRun:
    """A run this process has open: what any of its enders (its tracker, a crash hook, the exit hook) needs.

    It changes only through its methods, each named for what happened to the run (the architecture test checks
    that no other code assigns its attributes): whoever reads a run's state finds every way it can change here.
    """

    __slots__ = ("store", "run_id", "start_key", "pipeline", "club_slug", "started_at", "generation", "thread",
                 "attached", "steps", "known_steps", "problems", "crashes", "pending", "ended", "troubles", "log_lines",
                 "log_since", "log_errors", "log_rows")

    def __init__(self, store: Store, run_id: int | None, pipeline: str, club_slug: str | None, started_at: str, *,
                 attached: bool = False) -> None:
        self.store = store
        # None while its start is not written yet (the database was locked at start_run): the next call that
        # can, or the exit hook, writes it (lifecycle.ensure_written).
        self.run_id = run_id
        # Stored with its row: a start tried again after a connection lost on the answer to its COMMIT finds
        # the row the first try wrote instead of writing a second run (`Runs.insert_run`).
        self.start_key = os.urandom(16).hex()
        self.pipeline = pipeline
        self.club_slug = club_slug
        self.started_at = started_at
        # The store's generation (its SQLite file) the run was written to: another one means the file was
        # replaced under the run, which is then written again in the file now at the path.
        self.generation = store.generation
        # The thread that opened it, which owns it: an uncaught exception ends its own thread's runs only.
        self.thread = threading.current_thread()
        # Joined, not owned: a Python child of `runtracker exec` records its view, the wrapper ends the run.
        self.attached = attached
        self.steps: dict[int, OpenStep] = {}
        self.known_steps: dict[int, str] = {}  # every step it started: id -> name
        # Errors recorded, steps ended failure/partial: `with tracker.run()` then ends `partial`, not `success`.
        self.problems = 0
        # Crash rows recorded while the run went on (a thread or task died): it can no longer end `success`.
        self.crashes = 0
        # An end its owner asked for whose write failed (a lock held too long): any later end of this process
        # writes this one instead of a guess, the exit hook at the latest.
        self.pending: Ending | None = None
        self.ended = False  # ended by this process (its tracker, or a crash hook in another thread)
        self.troubles = Troubles()  # its calls' failures: each kind logged once, counted at its end
        # Its tracker's `log_lines` (how many of the last log records its crash row gets; 0: none) and
        # `record_log_errors` (an ERROR log record becomes an error row). Runs of `runtracker exec` keep the
        # command's output tail instead.
        self.log_lines = 0
        self.log_since = 0.0  # when its tracker's start_run was called (time.time()): the records it gets since
        self.log_errors = False
        # ERROR log records not written yet (lifecycle.record_log_error): (step id, step name, message, stack, at).
        # Written by the run's next call or with its end, never from inside the logging call: that call may come
        # from a signal handler that interrupted one of our own writes on this thread.
        self.log_rows: list[LogRow] = []

    # -- its row --------------------------------------------------------------------------------------------
    def written(self, run_id: int, generation: int) -> None:
        """Its row is in the database: as `run_id`, in the store's file of `generation` (the generation taken
        before the write)."""
        self.run_id = run_id
        self.generation = generation

    def keeps_logs(self, lines: int, since: float, errors: bool) -> None:
        """Its tracker's log settings: the last `lines` log records since `since` go into its crash row;
        `errors`: its ERROR log records become error rows."""
        self.log_lines, self.log_since, self.log_errors = lines, since, errors

    def step_in_progress(self) -> OpenStep | None:
        """Its latest step still open: where an error or a crash row that names no step goes."""
        return next(reversed(self.steps.values()), None)

    # -- while it goes on -------------------------------------------------------------------------------------
    def step_started(self, step: OpenStep) -> None:
        self.steps[step.step_id] = step
        self.known_steps[step.step_id] = step.name

    def step_ended(self, step_id: int, *, problem: bool = False) -> None:
        """One of its steps ended (`problem`: failure or partial, or with failed items), or was dropped: its
        end_step is then refused with a warning."""
        self.steps.pop(step_id, None)
        if problem:
            self.problems += 1

    def errors_recorded(self, count: int) -> None:
        self.problems += count

    def thread_crashed(self) -> None:
        """A thread or task of its process died (its crash row is recorded): it can no longer end `success`."""
        self.crashes += 1

    def log_error_kept(self, row: LogRow) -> None:
        """An ERROR log record, kept to be written by its next call or with its end."""
        self.log_rows.append(row)
        self.problems += 1

    def log_errors_written(self, count: int) -> None:
        """The first `count` of its kept ERROR log records are written."""
        del self.log_rows[:count]

    # -- its end ----------------------------------------------------------------------------------------------
    def end_deferred(self, ending: Ending) -> None:
        """Its end could not be written now: kept, and written by the process's next end instead of a guess."""
        self.pending = ending

    def end_written(self) -> None:
        """Its end is written (by this process): its kept ERROR log records went with it."""
        self.ended = True
        self.log_rows.clear()


class Hooks:
    """What `runtracker.core.hooks` installed, and what each replaced (it calls that one, exactly once)."""

    __slots__ = ("installed", "previous", "lock", "undo")

    def __init__(self) -> None:
        self.installed: set[str] = set()
        self.previous: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.undo: Callable[[], None] | None = None  # `hooks.uninstall`, once `hooks.install` ran


class Crash(Record):
    """An in-process death being handled: what the exit hook writes on runs still open afterwards."""

    __slots__ = ("kind", "message", "stack")

    def __init__(self, kind: str, message: str, stack: str | None) -> None:
        self.kind = kind
        self.message = message
        self.stack = stack


class ProcessState:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self._runs: dict[int, OpenRun] = {}
        self.exit_code: int | None = None  # what sys.exit was given
        self.pending_signal: int | None = None  # a signal whose (user's) handler is running
        self.crash: Crash | None = None  # the uncaught exception the excepthook saw
        self.stores = StoreCache()
        self.crash_file = CrashFile()
        self.heartbeat = Heartbeat(self.open_runs, self.crash_file)
        self.hooks = Hooks()
        self.log_ring = LogRing()
        self.log_capture = LogCapture()  # what Apprise logs while a channel sends (alerts/channels.py)
        self.swept_crash_dirs: set[str] = set()  # where leftover faulthandler files were looked for
        self._identity: Identity | None = None
        self.settings = SETTINGS  # the same in a forked child: its environment is the parent's
        # The never-raise guard's state (tests collect what it swallows): the very object `base.guard` uses,
        # which owns it because the base layer imports nothing above it.
        self.guard = GUARD
        # The dashboard's password hasher (web/passwords.py): None until first used (argon2's defaults); tests
        # set a cheap one.
        self.password_hasher: Any = None

    # -- the runs this process has open ---------------------------------------------------------------------
    def register(self, run: OpenRun) -> None:
        with self.lock:
            self._runs[id(run)] = run

    def unregister(self, run: OpenRun) -> None:
        with self.lock:
            self._runs.pop(id(run), None)

    def open_runs(self) -> list[OpenRun]:
        """The runs this process has open; none in a forked child that opened none of its own (also where a
        fork bypassed os.register_at_fork)."""
        with self.lock:
            return list(self._runs.values()) if os.getpid() == self.pid else []

    def identity(self) -> Identity:
        """This process's identity: read once per process, but for the host name, which $RUNTRACKER_HOSTNAME may
        set at any time (tests play other hosts with it)."""
        identity = self._identity
        if identity is None or identity.pid != os.getpid():
            identity = self._identity = own_identity()
        name = hostname()
        if identity.hostname != name:
            identity = Identity(name, identity.pid, identity.process_started_at, identity.process_key)
        return identity

    # -- fork, and tests ------------------------------------------------------------------------------------
    def after_fork_in_child(self) -> None:
        """The one fork hook (os.register_at_fork): the child starts with nothing of the parent's. Locks that a
        parent thread held at the moment of the fork are replaced, never waited for."""
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self._runs.clear()
        self.exit_code = self.pending_signal = self.crash = None
        self.stores.forget_in_child()
        self.heartbeat.forget_in_child()
        self.crash_file.forget_in_child()
        self.hooks.lock = threading.Lock()
        self.log_ring.forget_in_child()
        self.log_capture.forget_in_child()
        self.swept_crash_dirs.clear()
        self._identity = None

    def reset(self) -> None:
        """Back to a fresh process (tests; `runtracker.testing.reset`): forget open runs, stop the heartbeat, close
        the stores, put back every process hook and the log record factory, forget the password hasher and the
        settings (what was resolved, the wrong values warned about, the redaction rules). A collection of what the
        guard swallows (`testing.capture_swallowed`) is left to its block; the fork hook stays (registered once
        per interpreter)."""
        with self.lock:
            self._runs.clear()
        self.exit_code = self.pending_signal = self.crash = None
        self.heartbeat.stop(wait_s=15)  # before closing the stores it may be writing to
        self.crash_file.close()
        self.stores.close_all()
        self.heartbeat = Heartbeat(self.open_runs, self.crash_file)
        self.log_ring.uninstall()
        if self.hooks.undo is not None:
            self.hooks.undo()
        self.swept_crash_dirs.clear()
        self._identity = None
        self.password_hasher = None
        self.settings.reset()


STATE = ProcessState()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: STATE.after_fork_in_child())
