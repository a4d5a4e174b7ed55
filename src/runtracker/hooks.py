"""Process hooks that end open runs when the process dies while it can still run code.

One function per kind of death, in the order of the README's crash table. Each is installed once per
process (under a lock, whatever the number of trackers), keeps the hook that was there before, and calls it
exactly once, so the process ends as it would without us: same traceback, same exit code, same signal.
Hard deaths (SIGKILL, os._exit, segfaults, power loss) run no code at all; the reaper finds those.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import process
from .guard import report

log = logging.getLogger("runtracker")

_install_lock = threading.Lock()
_installed: set[str] = set()
_previous: dict[str, Any] = {}
HANDLED_SIGNALS = ("SIGTERM", "SIGHUP")


def install() -> None:
    """Install every hook not yet installed in this process. Cheap after the first call.

    Signal handlers are checked again on every call: a pipeline that set its own SIGTERM handler after
    our first start_run replaced ours, and the next start_run wraps (and chains) the pipeline's handler.
    """
    if len(_installed) == len(_INSTALLERS):
        if threading.current_thread() is threading.main_thread():
            _recheck_signal_handlers()
        return
    with _install_lock:
        for name, installer in _INSTALLERS:
            if name in _installed:
                continue
            try:
                if installer():
                    _installed.add(name)
            except Exception as exc:  # one hook failing to install must not cost the others
                report(f"installing the {name} hook", exc)


# -- uncaught exception in the main thread (incl. asyncio.run(main) raising, KeyboardInterrupt) ------------
def _runtracker_excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> Any:
    try:
        kind = "keyboard_interrupt" if issubclass(exc_type, KeyboardInterrupt) else "uncaught_exception"
        if exc is not None and exc.__traceback__ is None:
            exc = exc.with_traceback(tb)
        message, stack = process.format_exception(exc)
        signal_name = _signal_name(process.pending_signal)
        process.finish_all_crashed(kind, message, stack, signal_name=signal_name)
    except BaseException as error:  # noqa: BLE001 - the previous hook must run whatever happens here
        report("recording an uncaught exception", error)
    finally:
        result = _previous["excepthook"](exc_type, exc, tb)
    return result


def _install_excepthook() -> bool:
    _previous["excepthook"] = sys.excepthook
    sys.excepthook = _runtracker_excepthook
    return True


# -- uncaught exception in another thread: the process goes on ---------------------------------------------
def _runtracker_threading_excepthook(args: Any) -> Any:
    try:
        if args.exc_type is not SystemExit:  # the default hook ignores SystemExit in threads; so do we
            message, stack = process.format_exception(args.exc_value)
            thread = getattr(args.thread, "name", "?")
            process.record_crash_rows(f"uncaught exception in thread {thread}", message, stack)
    except BaseException as error:  # noqa: BLE001
        report("recording a thread exception", error)
    finally:
        result = _previous["threading_excepthook"](args)
    return result


def _install_threading_excepthook() -> bool:
    _previous["threading_excepthook"] = threading.excepthook
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
            message, stack = process.format_exception(exc)
            first_line = record.getMessage().splitlines()[0] if record.msg else "asyncio error"
            process.record_crash_rows(f"asyncio: {first_line}", message, stack)
        except Exception as error:
            report("recording an asyncio exception", error)
        return True


def _install_asyncio_filter() -> bool:
    logging.getLogger("asyncio").addFilter(_AsyncioErrorFilter())
    return True


# -- SIGTERM, SIGHUP -------------------------------------------------------------------------------------
def _signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _runtracker_signal_handler(signum: int, frame: Any) -> Any:
    """Record the signal, then behave as the previous disposition would.

    A user's own Python handler decides what the signal means (it may shut down gracefully and end the run
    itself), so it is called and nothing is written here; if the process then exits with the run still open,
    the exit hook records the failure naming this signal. With the default disposition the process must die
    by the signal: record the crash, restore SIG_DFL and send the signal again, so the parent sees -N.
    """
    previous = _previous.get(f"signal:{signum}")
    if callable(previous):
        process.pending_signal = signum
        return previous(signum, frame)
    name = _signal_name(signum) or str(signum)
    try:
        process.finish_all_crashed("signal", f"received {name}", None, signal_name=name)
    except BaseException as error:  # noqa: BLE001 - the process must still die by its signal
        report(f"recording {name}", error)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return None


def _recheck_signal_handlers() -> None:
    for name in HANDLED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not _runtracker_signal_handler:
            with _install_lock:
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
        _previous[f"signal:{signum}"] = current
        signal.signal(signum, _runtracker_signal_handler)
    return True


# -- sys.exit(n) and falling off the end without end_run ---------------------------------------------------
def _runtracker_sys_exit(status: object = None) -> Any:
    # SystemExit reaches no hook and atexit is not told the exit code: remember it here. A SystemExit
    # raised directly (not through sys.exit) outside `with tracker.run()` is seen only as "exit code 0".
    process.exit_code = _exit_status(status)
    return _previous["sys_exit"](status)


def _exit_status(status: object) -> int:
    if status is None:
        return 0
    if isinstance(status, int):
        return status
    return 1  # sys.exit("message") prints the message and exits 1


def _runtracker_at_exit() -> None:
    # Python swallows exceptions raised in atexit handlers (they go to sys.unraisablehook): catch our own.
    try:
        runs = process.open_runs()
        if not runs:
            return
        from .tracker import retry_pending_end

        runs = [run for run in runs if not retry_pending_end(run)]
        if not runs:
            return
        code = process.exit_code
        signal_name = _signal_name(process.pending_signal)
        if signal_name:
            message = f"received {signal_name}; process exited with code {code if code is not None else 0}"
        elif code is not None:
            message = f"process exited with code {code} without end_run"
        else:
            message = "process exited without end_run"
        process.finish_all_crashed("exit", message, None, exit_code=code if code is not None else 0,
                                   signal_name=signal_name)
    except BaseException as error:  # noqa: BLE001
        report("recording the process exit", error)


def _install_exit_hooks() -> bool:
    _previous["sys_exit"] = sys.exit
    sys.exit = _runtracker_sys_exit
    atexit.register(_runtracker_at_exit)
    return True


# -- os.fork(): the child's death is not the parent's -------------------------------------------------------
def _on_fork_child() -> None:
    from . import storage

    process.reset_after_fork()
    storage._lock = threading.Lock()
    storage.forget_inherited_stores()


_fork_hook_registered = False


def _install_fork_hook() -> bool:
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_on_fork_child)
        _fork_hook_registered = True
    return True


def uninstall() -> None:
    """Put back every hook we replaced (for tests; a pipeline never needs this). The fork hook stays,
    since os.register_at_fork has no undo, but it only acts on runs this process registered."""
    with _install_lock:
        if sys.excepthook is _runtracker_excepthook:
            sys.excepthook = _previous["excepthook"]
        if threading.excepthook is _runtracker_threading_excepthook:
            threading.excepthook = _previous["threading_excepthook"]
        if sys.exit is _runtracker_sys_exit:
            sys.exit = _previous["sys_exit"]
        atexit.unregister(_runtracker_at_exit)
        asyncio_logger = logging.getLogger("asyncio")
        for log_filter in list(asyncio_logger.filters):
            if isinstance(log_filter, _AsyncioErrorFilter):
                asyncio_logger.removeFilter(log_filter)
        if threading.current_thread() is threading.main_thread():
            for key, previous in list(_previous.items()):
                if key.startswith("signal:"):
                    signum = int(key.split(":", 1)[1])
                    if signal.getsignal(signum) is _runtracker_signal_handler:
                        signal.signal(signum, previous)
                    del _previous[key]
        _installed.intersection_update({"fork"})


_INSTALLERS: tuple[tuple[str, Callable[[], bool]], ...] = (
    ("excepthook", _install_excepthook),
    ("threading_excepthook", _install_threading_excepthook),
    ("asyncio", _install_asyncio_filter),
    ("signals", _install_signal_handlers),
    ("exit", _install_exit_hooks),
    ("fork", _install_fork_hook),
)
