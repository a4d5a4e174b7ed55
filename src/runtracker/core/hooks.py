"""Process hooks that end open runs when the process dies while it can still run code.

One function per kind of death, in the order of the crash table (docs/crashes.md). Each is installed once per
process (under a lock, whatever the number of trackers), keeps the hook that was there before, and calls it
exactly once, so the process ends as it would without us: same traceback, same exit code, same signal.
Hard deaths (SIGKILL, os._exit, segfaults, power loss) run no code at all; the reaper finds those.

Every hook ends runs through `lifecycle.end_run`: a run whose owner asked for an end that could not be written
yet (its `pending` end) gets that end, never the hook's guess. Runs belong to the thread that opened them: an
uncaught exception ends its own thread's runs (and those of threads already gone); a live thread's run is ended
by that thread, or at the latest by the exit hook.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from ..base.guard import report
from ..base.outcomes import FAILURE
from . import lifecycle
from .ending import EXIT, KEYBOARD_INTERRUPT, SIGNAL, UNCAUGHT_EXCEPTION, Ending, crash, exit_status
from .state import STATE, Crash

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("runtracker")

HANDLED_SIGNALS = ("SIGTERM", "SIGHUP")


def install() -> None:
    """Install every hook not yet installed in this process. Cheap after the first call.

    Signal handlers are checked again on every call: a pipeline that set its own SIGTERM handler after
    our first start_run replaced ours, and the next start_run wraps (and chains) the pipeline's handler.
    """
    hooks = STATE.hooks
    if len(hooks.installed) == len(_INSTALLERS):
        if threading.current_thread() is threading.main_thread():
            _recheck_signal_handlers()
        return
    with hooks.lock:
        hooks.undo = uninstall  # how `STATE.reset` puts them back (the state cannot import this module)
        for name, installer in _INSTALLERS:
            if name in hooks.installed:
                continue
            try:
                if installer():
                    hooks.installed.add(name)
            except Exception as exc:  # one hook failing to install must not cost the others
                report(f"installing the {name} hook", exc)


# -- uncaught exception in the main thread (incl. asyncio.run(main) raising, KeyboardInterrupt) ------------
def _runtracker_excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> Any:
    try:
        kind = KEYBOARD_INTERRUPT if issubclass(exc_type, KeyboardInterrupt) else UNCAUGHT_EXCEPTION
        if exc is not None and exc.__traceback__ is None:
            exc = exc.with_traceback(tb)
        ending = crash(kind, exc, summary=_signal_fields(STATE.pending_signal))
        # Runs of threads still alive are theirs to end: Python waits for non-daemon threads before it exits,
        # and the exit hook ends whatever is left then, naming this exception.
        STATE.crash = Crash(kind, ending.message or "", ending.stack)
        lifecycle.end_open_runs(lifecycle.runs_of_dying_thread(threading.current_thread()), ending,
                                "an uncaught exception")
    except BaseException as error:  # noqa: BLE001 - the previous hook must run whatever happens here
        report("recording an uncaught exception", error)
    finally:
        result = STATE.hooks.previous["excepthook"](exc_type, exc, tb)
    return result


def _install_excepthook() -> bool:
    STATE.hooks.previous["excepthook"] = sys.excepthook
    sys.excepthook = _runtracker_excepthook
    return True


# -- uncaught exception in another thread: the process goes on ---------------------------------------------
def _runtracker_threading_excepthook(args: Any) -> Any:
    try:
        if args.exc_type is not SystemExit:  # the default hook ignores SystemExit in threads; so do we
            thread = args.thread if args.thread is not None else threading.current_thread()
            name = getattr(thread, "name", "?")
            # Its own runs can never be ended by it now; the others' go on, but cannot end `success`.
            own = [run for run in STATE.open_runs() if run.thread is thread]
            ending = crash(UNCAUGHT_EXCEPTION, args.exc_value, summary={"thread": name})
            lifecycle.end_open_runs(own, ending, f"an uncaught exception in thread {name}")
            others = [run for run in STATE.open_runs() if run.thread is not thread]
            lifecycle.record_crash_rows(f"uncaught exception in thread {name}", args.exc_value, others)
    except BaseException as error:  # noqa: BLE001
        report("recording a thread exception", error)
    finally:
        result = STATE.hooks.previous["threading_excepthook"](args)
    return result


def _install_threading_excepthook() -> bool:
    STATE.hooks.previous["threading_excepthook"] = threading.excepthook
    threading.excepthook = _runtracker_threading_excepthook
    return True


# -- asyncio: an exception nobody retrieved (reported when the task is garbage-collected) ------------------
class _AsyncioErrorFilter(logging.Filter):
    """Sees what asyncio's default exception handler logs, without replacing any loop's handler.

    It is a filter on the `asyncio` logger, not a handler: a handler would stop Python's last-resort
    handler from printing "Task exception was never retrieved" to stderr, and the process must print what
    it prints without us. It works for every loop, including ones created after start_run, and a user's
    own loop exception handler (which takes over the logging) stays in charge. It never filters anything out.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if record.levelno < logging.ERROR or not record.exc_info or record.exc_info[1] is None:
                return True
            exc = record.exc_info[1]
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                return True
            first_line = record.getMessage().splitlines()[0] if record.msg else "asyncio error"
            lifecycle.record_crash_rows(f"asyncio: {first_line}", exc, STATE.open_runs())
        except Exception as error:
            report("recording an asyncio exception", error)
        return True


def _install_asyncio_filter() -> bool:
    logging.getLogger("asyncio").addFilter(_AsyncioErrorFilter())
    return True


# -- SIGTERM, SIGHUP -------------------------------------------------------------------------------------
def signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _signal_fields(signum: int | None) -> dict[str, Any] | None:
    name = signal_name(signum)
    return {"signal": name} if name else None


def _runtracker_signal_handler(signum: int, frame: Any) -> Any:
    """Record the signal, then behave as the previous disposition would.

    A user's own Python handler decides what the signal means (it may shut down gracefully and end the run
    itself), so it is called and nothing is written here; if the process then exits with the run still open,
    the exit hook records the failure naming this signal. With the default disposition the process must die
    by the signal: record the crash of every open run (no thread of this process will run again), restore
    SIG_DFL and send the signal again, so the parent sees -N.
    """
    previous = STATE.hooks.previous.get(f"signal:{signum}")
    if callable(previous):
        STATE.pending_signal = signum
        return previous(signum, frame)
    name = signal_name(signum) or str(signum)
    try:
        ending = Ending(FAILURE, kind=SIGNAL, message=f"received {name}", summary={"signal": name})
        lifecycle.end_open_runs(STATE.open_runs(), ending, name)
    except BaseException as error:  # noqa: BLE001 - the process must still die by its signal
        report(f"recording {name}", error)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return None


def _recheck_signal_handlers() -> None:
    for name in HANDLED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not _runtracker_signal_handler:
            with STATE.hooks.lock:
                _install_signal_handlers()
            return


def _install_signal_handlers() -> bool:
    # Signal handlers can only be set from the main thread; a tracker started elsewhere tries again next time.
    if threading.current_thread() is not threading.main_thread():
        return False
    for name in HANDLED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        current = signal.getsignal(signum)
        # Ignored signals stay ignored, and a handler set outside Python (None) is left alone.
        if current in (signal.SIG_IGN, None) or current is _runtracker_signal_handler:
            continue
        STATE.hooks.previous[f"signal:{signum}"] = current
        signal.signal(signum, _runtracker_signal_handler)
    return True


# -- sys.exit(n), falling off the end without end_run: the exit handler ---------------------------------------
def _runtracker_sys_exit(status: object = None) -> Any:
    # SystemExit reaches no hook and atexit is not told the exit code: remember it here. A SystemExit
    # raised directly (not through sys.exit) outside `with tracker.run()` is seen only as "exit code 0".
    STATE.exit_code = exit_status(status)
    return STATE.hooks.previous["sys_exit"](status)


def _at_exit() -> None:
    """The one exit handler of the process. Its steps, in this order:

    1. End every run still open: with the end its owner asked for and could not write yet (a lock held too
       long), else as `failure` of kind `exit`, naming the exit code, the signal being handled, or the uncaught
       exception the process dies of. The heartbeat keeps beating meanwhile: a slow write is not a dead run.
    2. Stop the heartbeat thread: nothing of this process is running any more.
    3. Put faulthandler back and delete the empty faulthandler file, last: a fatal signal while the runs are
       being ended is still written there for the reaper.
    Python swallows exceptions raised in atexit handlers (they go to sys.unraisablehook): each step catches
    and logs its own.
    """
    try:
        runs = STATE.open_runs()
        if runs:
            lifecycle.end_open_runs(runs, _exit_ending(), "the process exit")
    except BaseException as error:  # noqa: BLE001
        report("recording the process exit", error)
    try:
        STATE.heartbeat.stop()
    except BaseException as error:  # noqa: BLE001
        report("stopping the heartbeat at exit", error)
    try:
        STATE.crash_file.close()
    except BaseException as error:  # noqa: BLE001
        report("removing the faulthandler file at exit", error)


def _exit_ending() -> Ending:
    crash = STATE.crash
    if crash is not None:  # the excepthook ended its thread's runs; these belong to threads still running
        return Ending(FAILURE, kind=crash.kind, stack=crash.stack,
                      message=f"the process died of {crash.message} while this run's thread was still running")
    code = STATE.exit_code if STATE.exit_code is not None else 0
    name = signal_name(STATE.pending_signal)
    if name:
        message = f"received {name}; process exited with code {code}"
    elif STATE.exit_code is not None:
        message = f"process exited with code {code} without end_run"
    else:
        message = "process exited without end_run"
    summary: dict[str, Any] = {"exit_code": code}
    if name:
        summary["signal"] = name
    return Ending(FAILURE, kind=EXIT, message=message, exit_code=code, summary=summary)


def _install_exit_hooks() -> bool:
    STATE.hooks.previous["sys_exit"] = sys.exit
    sys.exit = _runtracker_sys_exit
    atexit.register(_at_exit)
    return True


def uninstall() -> None:
    """Put back every hook we replaced (for tests; a pipeline never needs this). The fork hook stays (see
    `runtracker.core.state`): it only forgets this process's state in a child."""
    hooks = STATE.hooks
    with hooks.lock:
        if sys.excepthook is _runtracker_excepthook:
            sys.excepthook = hooks.previous["excepthook"]
        if threading.excepthook is _runtracker_threading_excepthook:
            threading.excepthook = hooks.previous["threading_excepthook"]
        if sys.exit is _runtracker_sys_exit:
            sys.exit = hooks.previous["sys_exit"]
        atexit.unregister(_at_exit)
        asyncio_logger = logging.getLogger("asyncio")
        for log_filter in list(asyncio_logger.filters):
            if isinstance(log_filter, _AsyncioErrorFilter):
                asyncio_logger.removeFilter(log_filter)
        if threading.current_thread() is threading.main_thread():
            for key, previous in list(hooks.previous.items()):
                if key.startswith("signal:"):
                    signum = int(key.split(":", 1)[1])
                    if signal.getsignal(signum) is _runtracker_signal_handler:
                        signal.signal(signum, previous)
                    del hooks.previous[key]
        hooks.installed.clear()


_INSTALLERS: tuple[tuple[str, Callable[[], bool]], ...] = (
    ("excepthook", _install_excepthook),
    ("threading_excepthook", _install_threading_excepthook),
    ("asyncio", _install_asyncio_filter),
    ("signals", _install_signal_handlers),
    ("exit", _install_exit_hooks),
)
