"""The crash file: one file per process that says how it died, written by the process and read by the reaper.

**Writing.** While any run is open, `faulthandler` writes the C-level and Python traceback of a fatal signal
(SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL) into a file per process, named after the host, pid and process start
time (`crash_file_name`), in the database's directory (SQLite) or $RUNTRACKER_CRASH_DIR (default: a
`runtracker` folder in the temp directory). faulthandler is process-wide: if the program (or PYTHONFAULTHANDLER
/ -X faulthandler) enabled it already, it is left alone. It is disabled and the empty file removed by the
heartbeat thread as it ends (at its first beat with no run open), or by the exit handler. runtracker writes into
the same file its own last words: the end of a run it could not write (`LAST_WORDS`).

**Reading.** The reaper finds a lost run's file by the owner recorded on the run (`find`), takes from it the
traceback and that run's last words (`read`), and removes it once every run of the process is ended
(`remove`); `sweep` removes the files of this host's dead processes that own no `running` run.

`CrashFile` is an object of the process state (`runtracker.core.state`), which resets it in a forked child: the
child's fatal errors are not the parent's runs'. Everything that knows the file's name or contents is here.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence

from ..base import sanitize
from ..base.clock import iso, to_ms
from ..base.guard import report
from ..settings import values
from ..storage import Store
from . import liveness
from .ending import Ending
from .liveness import Identity

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import IO, Any

log = logging.getLogger("runtracker")

# The first line of what runtracker itself leaves in the crash file: the end of a run it could not write.
LAST_WORDS = "runtracker: the end of run {run_id} could not be written ({error}): "

_NAME_TAIL = r"-(?P<pid>\d+)-(?P<started>\d+)\.txt"  # what follows the prefix; compiled at first use, not at import


# -- where it is --------------------------------------------------------------------------------------------
def crash_dir(store: Store) -> str:
    """Where a process's faulthandler file goes for runs on `store` (and where a reaper looks for it)."""
    configured = values.crash_dir()
    if configured:
        return configured
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


# -- writing: the process's own file -------------------------------------------------------------------------
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

    def last_words(self, store: Store, identity: Identity, run_id: int, error: BaseException, what: str,
                   stack: str | None) -> None:
        """Leave in this process's crash file for `store` (created if faulthandler does not write one) the end of
        run `run_id` that could not be written because of `error`: `what` it was and its `stack`. Flushed to
        disk: the process may be about to die."""
        first_line = f"{type(error).__name__}: {error}".splitlines()[0]
        text = LAST_WORDS.format(run_id=run_id, error=first_line) + what + "\n" + (stack or "") + "\n"
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


# -- reading: a lost run's file, for the reaper ---------------------------------------------------------------
def find(store: Store, row: dict[str, Any]) -> str | None:
    """The path of the crash file of the process that owns the run `row` (as `Store.running_runs` gives it), if
    there is one."""
    name = crash_file_name(row.get("hostname"), row.get("pid"), row.get("process_started_at"))
    path = os.path.join(crash_dir(store), name)
    return path if os.path.exists(path) else None


def read(path: str | None, run_id: int) -> tuple[str | None, tuple[str, str] | None]:
    """(faulthandler's traceback, run `run_id`'s last words as (what, stack)) from a process's crash file."""
    if path is None:
        return None, None
    try:
        with open(path, errors="replace") as f:
            text = f.read(sanitize.STACK_LIMIT * 8)
    except OSError:
        return None, None
    fault: list[str] = []
    words: dict[int, list[str]] = {}
    current: list[str] = fault
    marker = LAST_WORDS.split("{run_id}")[0]
    for line in text.splitlines():
        if line.startswith(marker):
            owner = line[len(marker):].split(" ", 1)[0]
            current = words.setdefault(int(owner) if owner.isdigit() else -1, [])
            current.clear()  # the latest words of a run count
        current.append(line)
    mine = words.get(run_id)
    last_words = None
    if mine:
        what = mine[0].split("): ", 1)[-1]
        last_words = (what, "\n".join(mine[1:]).strip())
    return _current_thread_first("\n".join(fault).strip()) or None, last_words


def words_of(ending: Ending) -> tuple[str, str | None]:
    """(what, stack): the last words of a run whose end `ending` could not be written. A crash: its kind,
    message and stack. The owner's own end: what `asked_end` reads back, so that the reaper writes it as asked
    (outcome, time asked, stats), never as a crash."""
    if ending.kind:
        return f"{ending.kind}: {ending.message}", ending.stack
    asked = "" if ending.asked_ms is None else f" at {iso(ending.asked_ms)}"
    summary = ending.summary_json if ending.summary is None else sanitize.to_json(ending.summary)
    return f"end_run({ending.outcome!r}) was asked{asked}", summary


def asked_end(last_words: tuple[str, str] | None) -> Ending | None:
    """The end its owner asked for, from a run's last words (`words_of`); None for a crash's words."""
    if last_words is None:
        return None
    match = _ASKED.fullmatch(last_words[0].strip())
    if match is None:
        return None
    return Ending(match["outcome"], summary_json=last_words[1] or None,
                  asked_ms=to_ms(match["at"]) if match["at"] else None)


_ASKED = re.compile(r"end_run\('(?P<outcome>success|partial|failure)'\) was asked(?: at (?P<at>\S+))?")


def remove(paths: Iterable[str]) -> None:
    """Remove crash files the reaper is done with (every run of their process is ended)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _current_thread_first(text: str) -> str:
    """faulthandler lists threads in no useful order: put the one that crashed right after the header, so
    that it survives the stack's truncation. Blocks are separated by blank lines."""
    blocks = text.split("\n\n")
    current = [b for b in blocks if b.startswith("Current thread")]
    if len(current) != 1 or len(blocks) < 3:
        return text
    rest = [b for b in blocks[1:] if b is not current[0]]
    return "\n\n".join([blocks[0], current[0], *rest])


def fatal_error(fault: str | None) -> str | None:
    """'Fatal Python error: Segmentation fault' from faulthandler's output."""
    if not fault:
        return None
    first = fault.splitlines()[0].strip()
    return first if first.startswith("Fatal Python error") else "faulthandler wrote a traceback"


def sweep(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Remove faulthandler files of this host's processes that are gone and own no `running` run (`rows`): they
    died after their runs had ended (e.g. by a signal, which skips the exit hook that removes the file)."""
    directory = crash_dir(store)
    prefix = crash_file_prefix(liveness.hostname())
    try:
        entries = [e.name for e in os.scandir(directory) if e.name.startswith(prefix)]
    except OSError:
        return
    if not entries:
        return
    import psutil

    running_pids = {row.get("pid") for row in rows if row.get("hostname") == liveness.hostname()}
    for name in entries:
        match = re.fullmatch(_NAME_TAIL, name[len(prefix) - 1 :])
        if match is None:
            continue
        pid = int(match["pid"])
        if pid in running_pids or pid == os.getpid():
            continue
        start = liveness.process_start_time(pid) if psutil.pid_exists(pid) else None
        recorded = int(match["started"]) / 1000
        if start is not None and (not recorded or abs(start - recorded) <= liveness.START_TIME_TOLERANCE_S):
            continue  # its owner is alive (a name without a start time: its pid is, which must do)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
