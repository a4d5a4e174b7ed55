"""The last log lines before a crash: a bounded ring of the process's most recent `logging` records.

The ring is fed by a log record *factory* (`logging.setLogRecordFactory`), not by a handler on the root logger:
a handler there would change what the process does without us. `logging.basicConfig()` does nothing once the
root logger has a handler, `logging.warning()` calls `basicConfig()` only while it has none, and Python's
last-resort handler (which prints warnings to stderr when no handler is configured) stays silent as soon as
one handler is found. The factory is called for every record a logger lets through (its level, the root's if
it has none), before any filter or handler, and it only appends the record to a `collections.deque`: no lock,
no formatting at log time.

The message is formatted when a crash is recorded, not when it is logged: that is where the cost goes. If one
of the process's own handlers already formatted it when it was logged (`record.message`), that text is used —
what the log said at the time; else `record.getMessage()` then, so an argument changed in between shows its
later value. A message that fails to format is shown as its format string, saying so. A record with exception
info is copied at log time without it (the traceback would keep its frames, and every object they hold, alive
while the record is in the ring); its line ends with the exception.

One ring per process, owned by `state.STATE`; its size is the largest `log_lines` a tracker of the process
asked for (default 50). A crash row gets the lines of records created since its run started — of every thread
of the process — the last `log_lines` of them, each at most `LINE_LIMIT` characters, `TEXT_LIMIT` in all.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable

from ..base.clock import iso
from ..base.guard import report

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

DEFAULT_LINES = 50
MAX_LINES = 1000
LEVEL = logging.INFO  # the least level a record needs to enter the ring
LINE_LIMIT = 500  # characters of one record's line (a longer one ends in "…")
TEXT_LIMIT = 10_000  # characters of all lines of one crash row (the oldest are left out first)
# The section's first line, after the traceback in a crash row's `error_stack` (see `section`, `split_stack`).
HEADER = "--- last log lines"
_HEADER_ROOM = 100  # of TEXT_LIMIT, for the section's first line
_OWN_LOGGER = "runtracker"


class _Copied:
    """A record that carried exception info, copied at log time without the traceback."""

    __slots__ = ("created", "levelname", "name", "threadName", "message")

    def __init__(self, record: logging.LogRecord) -> None:
        self.created = record.created
        self.levelname = record.levelname
        self.name = record.name
        self.threadName = record.threadName  # noqa: N815 - the LogRecord attribute's name
        text = message_of(record)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text += f" [{_exception_line(exc)}]"
        self.message = text


class LogRing:
    """The ring, the record factory that feeds it, and the ERROR records' sink (`record_log_errors`)."""

    __slots__ = ("records", "sink", "previous", "factory", "local", "lock")

    def __init__(self) -> None:
        self.records: deque[Any] = deque(maxlen=0)
        # Called with each ERROR record of a logger other than runtracker's own, while the ring is installed and
        # a tracker asked for `record_log_errors` (lifecycle.record_log_error).
        self.sink: Callable[[logging.LogRecord], None] | None = None
        self.previous: Callable[..., logging.LogRecord] | None = None  # the factory ours wraps and calls
        self.factory: Callable[..., logging.LogRecord] | None = None  # ours, once installed
        self.local = threading.local()  # `busy`: this thread is inside the sink (no recursion)
        self.lock = threading.Lock()

    def install(self, size: int, sink: Callable[[logging.LogRecord], None] | None = None) -> None:
        """Install the factory (once per process; later calls only grow the ring or add the sink). A factory the
        process sets afterwards must call the one it replaces (as logging's documentation asks), or the ring
        sees nothing more; it is never wrapped twice."""
        with self.lock:
            if size > (self.records.maxlen or 0):
                self.records = deque(self.records, maxlen=min(size, MAX_LINES))
            if sink is not None:
                self.sink = sink
            if self.factory is None:
                self.previous = logging.getLogRecordFactory()
                self.factory = _factory(self, self.previous)
                logging.setLogRecordFactory(self.factory)

    def lines(self, since: float, limit: int) -> str | None:
        """The section a crash row gets: the last `limit` records created since `since` (`time.time()`, the
        clock of `LogRecord.created`), oldest first, capped at `TEXT_LIMIT` characters (the oldest left out
        first); None when there are none."""
        if limit <= 0:
            return None
        entries = list(self.records)  # a copy, taken atomically: other threads go on logging
        entries = [e for e in entries if e.created >= since][-limit:]
        if not entries:
            return None
        lines = [_line(entry) for entry in entries]
        total, kept = _HEADER_ROOM, 0
        for line in reversed(lines):
            total += len(line) + 1
            if total > TEXT_LIMIT:
                break
            kept += 1
        left_out = len(lines) - kept
        head = f"{HEADER} (the last {kept} of this run, oldest first"
        head += f"; {left_out} earlier left out for length) ---" if left_out else ") ---"
        return "\n".join([head, *lines[left_out:]])

    def recorded(self, record: logging.LogRecord) -> None:
        """An ERROR record: to the sink, unless it is runtracker's own (a failing database write logs an error,
        which must not become another write) or this thread is already inside the sink."""
        sink = self.sink
        name = record.name
        if sink is None or name == _OWN_LOGGER or name.startswith("runtracker.") or getattr(self.local, "busy",
                                                                                             False):
            return
        self.local.busy = True
        try:
            sink(record)
        finally:
            self.local.busy = False

    def uninstall(self) -> None:
        """Put the previous factory back if ours is still the one in use, and empty the ring (tests)."""
        with self.lock:
            if self.factory is not None and logging.getLogRecordFactory() is self.factory:
                logging.setLogRecordFactory(self.previous)  # type: ignore[arg-type]
                self.factory = self.previous = None
            self.records = deque(maxlen=0)
            self.sink = None

    def forget_in_child(self) -> None:
        """After fork: the parent's records are the parent's. The factory stays installed (the child's logging
        is the parent's copy), so it is never installed twice; a lock held by a parent thread is replaced."""
        self.lock = threading.Lock()
        self.local = threading.local()
        self.records.clear()


def _factory(ring: LogRing, previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    info, error = LEVEL, logging.ERROR

    # Its arguments are LogRecord's; logging calls it positionally (Logger.makeRecord).
    def runtracker_log_record_factory(name: Any, level: Any, fn: Any, lno: Any, msg: Any, args: Any,
                                      exc_info: Any, func: Any = None, sinfo: Any = None,
                                      **kwargs: Any) -> logging.LogRecord:
        record = previous(name, level, fn, lno, msg, args, exc_info, func, sinfo, **kwargs)
        try:
            if level >= info:
                ring.records.append(_Copied(record) if exc_info else record)
                if level >= error:
                    ring.recorded(record)
        except TypeError:  # logging.makeLogRecord() makes its record with level None: nothing to keep
            pass
        except Exception as exc:  # the log call must go on whatever happens here
            report("keeping a log record for the crash row", exc)
        return record

    return runtracker_log_record_factory


def message_of(record: Any) -> str:
    """A record's message: as a handler formatted it at log time, else formatted now; never raises."""
    text = record.__dict__.get("message")
    if isinstance(text, str):
        return text
    try:
        return str(record.getMessage())
    except Exception as exc:  # args that do not fit the format, or a __str__ that raises
        try:
            fmt = str(record.msg)
        except Exception:
            fmt = f"<unprintable {type(record.msg).__name__}>"
        return f"{fmt} (its arguments could not be formatted: {type(exc).__name__})"


def _exception_line(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _line(entry: Any) -> str:
    """`2026-11-26T19:27:33.598Z INFO nikki.sync: message`, the thread named when it is not the main one;
    continuation lines indented; at most LINE_LIMIT characters."""
    try:
        when = iso(int(entry.created * 1000))
    except Exception:
        when = "?"
    thread = entry.threadName
    where = entry.name if thread in (None, "MainThread") else f"{entry.name} [{thread}]"
    text = entry.message if isinstance(entry, _Copied) else message_of(entry)
    line = f"{when} {entry.levelname} {where}: {text}".rstrip("\n").replace("\n", "\n    ")
    return line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 1] + "…"


def split_stack(error_stack: object) -> tuple[str | None, str | None]:
    """A crash row's `error_stack` as (traceback, log lines section): either may be None."""
    if not isinstance(error_stack, str) or not error_stack:
        return None, None
    if error_stack.startswith(HEADER):
        return None, error_stack
    at = error_stack.find("\n\n" + HEADER)
    if at < 0:
        return error_stack, None
    return error_stack[:at] or None, error_stack[at + 2:]


def join_stack(stack: str | None, lines: str | None) -> str | None:
    """A crash row's `error_stack`: the traceback, then a blank line and the log lines section."""
    if not lines:
        return stack
    return lines if not stack else f"{stack.rstrip()}\n\n{lines}"


class LogCapture(logging.Filter):
    """What a library logs while a sender asks for it: Apprise says why a send failed only in its log, a warning
    ("A Connection error occurred sending JSON notification to 127.0.0.1.", "Failed to send JSON POST notification:
    Internal server error., error=500.") and, at debug level, the exception behind it ("Socket Exception: ...
    [Errno 111] Connection refused"). One per process, owned by `state.STATE`; installed once on each logger named.

    The lines being collected are a context variable, not a thread-local: channels send in threads of their own,
    and Apprise 2 runs each service's send in a worker thread of its pool, in a copy of the caller's context
    (`contextvars.copy_context`), so the worker's records land in the list of the send that caused them.

    It is a filter of the logger, not a handler: to see debug records at all, the logger's level is lowered to
    DEBUG, and the filter lets on to the handlers (the logger's and its parents') only the records the logger's
    own level would have let through before, so nobody's log gains a line."""

    def __init__(self) -> None:
        super().__init__()
        # (level, message) of each record while a send collects, else None; one variable per capture object.
        self.lines: contextvars.ContextVar[list[tuple[int, str]] | None] = contextvars.ContextVar(
            "runtracker_log_capture", default=None)
        self.install_lock = threading.Lock()
        # Logger name -> the logger and the level it had before (NOTSET: its parent's).
        self._levels: dict[str, tuple[logging.Logger, int]] = {}

    def install(self, logger_name: str) -> None:
        with self.install_lock:
            logger = logging.getLogger(logger_name)
            if self in logger.filters:
                return
            self._levels[logger_name] = (logger, logger.level)
            logger.addFilter(self)
            if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
                logger.setLevel(logging.DEBUG)

    def start(self) -> None:
        """Collect what is logged in this context (this thread, and work it hands on with its context) from now."""
        self.lines.set([])

    def stop(self) -> list[tuple[int, str]]:
        """What was logged since `start`, as (level, message); collecting stops."""
        lines = self.lines.get() or []
        self.lines.set(None)
        return lines

    def filter(self, record: logging.LogRecord) -> bool:
        lines = self.lines.get()
        if lines is not None:
            try:
                lines.append((record.levelno, record.getMessage()))
            except Exception:  # a record whose arguments do not format: its format string
                lines.append((record.levelno, str(record.msg)))
        known = self._levels.get(record.name)
        if known is None:
            return True  # not a logger it lowered (installed elsewhere by hand): no say
        logger, own = known
        before = own if own != logging.NOTSET else (logger.parent or logger).getEffectiveLevel()
        return record.levelno >= before

    def forget_in_child(self) -> None:
        self.install_lock = threading.Lock()  # a parent thread may have held it at the fork
