"""Is the process that owns a run still alive? The facts a run records about its owner, and how they are judged.

A run records its owner's hostname, pid, start time and a `process_key`. The reaper judges a `running` run:

- **same host** (same hostname and, where known, the same kernel boot and pid namespace): the pid is checked
  at once. No such process, a zombie, or a process with another start time (the pid was reused) means the
  owner is gone. No heartbeat timeout is waited for.
- **another host**: the pid means nothing here, so only the heartbeat counts: older than the timeout means
  the owner is gone.

On Linux the `process_key` is `linux:<boot id>:<pid namespace>:<start in clock ticks since boot>`. Ticks since
boot never change for a process and are unaffected by clock steps (psutil's wall-clock start time is computed
from the boot time, which moves when NTP steps the clock). The boot id and the pid namespace tell two
machines cloned with the same hostname, or two containers sharing the host's hostname but not its pids,
apart: their pids are not comparable, so they are judged by heartbeat, as other hosts. Elsewhere (macOS)
psutil's start time, which the kernel records at process creation, is compared with a small tolerance.
"""

from __future__ import annotations

import os
import re

from ..base.clock import to_ms
from ..base.guard import report
from ..base.records import Record
from ..settings import values

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

# Wall-clock start times read by two processes may differ by rounding; a reused pid is never this close.
START_TIME_TOLERANCE_S = 1.0

# Verdicts: why an owner is gone (also stored in runs.reap_reason).
PID_GONE = "pid_gone"
PID_REUSED = "pid_reused"
HEARTBEAT_TIMEOUT = "heartbeat_timeout"
OWNERLESS_TIMEOUT = "ownerless_timeout"


class Identity(Record):
    """Who owns a run: what every run records about the process that opened it."""

    __slots__ = ("hostname", "pid", "process_started_at", "process_key")

    def __init__(self, hostname: str, pid: int, process_started_at: float | None, process_key: str | None) -> None:
        self.hostname = hostname
        self.pid = pid
        self.process_started_at = process_started_at  # seconds since the epoch (psutil), to tell a reused pid
        self.process_key = process_key  # linux:<boot id>:<pid namespace>:<start in ticks since boot>; None off Linux


def own_identity() -> Identity:
    """This process's identity, read from /proc and psutil (the process state keeps it, per pid)."""
    pid = os.getpid()
    try:
        started = process_start_time(pid)
    except Exception as exc:
        report("reading the process start time", exc)
        started = None
    try:
        key = process_key(pid)
    except Exception as exc:
        report("reading the process identity", exc)
        key = None
    return Identity(hostname(), pid, started, key)


def hostname() -> str:
    """This machine's name as runs record it: $RUNTRACKER_HOSTNAME if set (containers, tests), else the OS's."""
    return values.hostname() or os.uname().nodename


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def host_key() -> str | None:
    """`linux:<boot id>:<pid namespace>` of this process, or None where /proc does not tell (macOS)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:
        namespace = ""
    return f"linux:{boot}:{namespace}" if boot and namespace else None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name, which may contain spaces and parentheses)."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None or ")" not in raw:
        return None
    return raw.rsplit(")", 1)[1].split()


def process_key(pid: int) -> str | None:
    """The owner identity a run records: host key plus the start in clock ticks since boot (Linux only)."""
    host = host_key()
    fields = _stat_fields(pid)
    if host is None or fields is None or len(fields) < 20:
        return None
    return f"{host}:{fields[19]}"


def process_start_time(pid: int) -> float | None:
    """The process's start time in seconds since the epoch, or None if there is no such process."""
    import psutil  # imported here: `import runtracker` stays cheap

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


class Verdict(Record):
    """The reaper's judgement of one `running` run whose owner is gone."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason  # PID_GONE, PID_REUSED or HEARTBEAT_TIMEOUT
        self.detail = detail  # a sentence for the crash row


class Death(Record):
    """An owner's death as a monitor saw it (its pidfd became readable, `runtracker.monitor.pidwatch`): the owner
    was alive at `alive_ms` and dead at `seen_ms` (ms since the epoch, this host's clock, as the owner's own)."""

    __slots__ = ("alive_ms", "seen_ms")

    def __init__(self, alive_ms: int, seen_ms: int) -> None:
        self.alive_ms = alive_ms  # the last moment the watcher knew the process alive
        self.seen_ms = seen_ms  # the moment it saw the process dead: the death lies between the two


class Observer(Record):
    """Who is judging: the reaper's host, the heartbeat timeout it applies to other hosts, and how long it lets
    a run that records no owner run (globally, and per pipeline)."""

    __slots__ = ("hostname", "host_key", "heartbeat_timeout_s", "now_ms", "ownerless_timeout_s",
                 "ownerless_timeouts")

    def __init__(self, hostname: str, host_key: str | None, heartbeat_timeout_s: float, now_ms: int,
                 ownerless_timeout_s: float = 6 * 3600.0, ownerless_timeouts: dict[str, float] | None = None) -> None:
        self.hostname = hostname
        self.host_key = host_key
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.now_ms = now_ms  # the moment of judging, milliseconds since the epoch
        self.ownerless_timeout_s = ownerless_timeout_s
        self.ownerless_timeouts = ownerless_timeouts or {}  # pipeline -> its own timeout

    @classmethod
    def here(cls, heartbeat_timeout_s: float, now_ms: int, ownerless_timeout_s: float = 6 * 3600.0,
             ownerless_timeouts: dict[str, float] | None = None) -> Observer:
        return cls(hostname(), host_key(), heartbeat_timeout_s, now_ms, ownerless_timeout_s, ownerless_timeouts)


def ownerless(run: dict[str, Any]) -> bool:
    """Whether a run records no owner at all (no host, pid or heartbeat): written by a tracker that records
    none, such as the original Node.js tool, or by runtracker before ownership existed."""
    return run.get("hostname") is None and run.get("pid") is None and run.get("heartbeat_at") is None


def judge(run: dict[str, Any], observer: Observer) -> Verdict | None:
    """None while the owner may be alive; else why it is gone. Never a guess that kills a live owner.

    `run` is a runs row with hostname, pid, process_started_at, process_key, heartbeat_at and started_at.
    """
    if ownerless(run):
        return _judge_ownerless(run, observer)
    pid = f"pid {run['pid']}" if run.get("pid") is not None else "the owner (pid unknown)"
    where = f"{pid} on {run.get('hostname') or 'an unknown host'}"
    if same_host(run, observer):
        verdict = _judge_pid(run, where)
        if verdict is not _UNKNOWN:
            return verdict  # type: ignore[return-value]
    # Another host, or a pid whose identity this host cannot check: only a stale heartbeat tells.
    age = heartbeat_age_s(run, observer.now_ms)
    if age is not None and age > observer.heartbeat_timeout_s:
        return Verdict(HEARTBEAT_TIMEOUT, f"no heartbeat from {where} for {age:.0f} s (timeout "
                       f"{observer.heartbeat_timeout_s:g} s)")
    return None


def _judge_ownerless(run: dict[str, Any], observer: Observer) -> Verdict | None:
    """Nothing tells whether the tracker of such a run is alive, and it may run for hours (a nightly sync):
    only a run older than the ownerless timeout (hours by default, per pipeline in the config file) is lost."""
    timeout = observer.ownerless_timeouts.get(str(run.get("pipeline")), observer.ownerless_timeout_s)
    started = to_ms(run.get("started_at"))
    if started is None or (observer.now_ms - started) / 1000 <= timeout:
        return None
    age = (observer.now_ms - started) / 1000
    return Verdict(OWNERLESS_TIMEOUT, f"it records no owner (no host, pid or heartbeat, as the original tool "
                   f"writes its runs) and has been running for {_hours(age)}, longer than the ownerless timeout "
                   f"of {_hours(timeout)}")


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def heartbeat_age_s(run: dict[str, Any], now_ms: int) -> float | None:
    """Seconds since the run's last heartbeat (or its start); None if neither is a readable time."""
    last = to_ms(run.get("heartbeat_at"))
    if last is None:  # none yet, or unreadable (written by another tool): the start is the last sign
        last = to_ms(run.get("started_at"))
    return None if last is None else (now_ms - last) / 1000


def same_host(run: dict[str, Any], observer: Observer) -> bool:
    """Whether a run's owner is on this host (same name, and same boot and pid namespace where known): its pid
    can be checked, and waited on, here."""
    if run.get("hostname") != observer.hostname or run.get("pid") is None:
        return False
    key = run.get("process_key")
    if key and observer.host_key:
        # Same name but another boot or pid namespace: its pids are not ours to check.
        return bool(str(key).startswith(observer.host_key + ":"))
    return True


_UNKNOWN = object()


def _judge_pid(run: dict[str, Any], where: str) -> Verdict | None | object:
    """Same host: the pid tells at once. _UNKNOWN when it cannot (no permission to look, no start time)."""
    import psutil

    pid = int(run["pid"])
    if not psutil.pid_exists(pid):  # kill(pid, 0): a process of another user still counts as existing
        return Verdict(PID_GONE, f"{where} no longer exists")
    key = run.get("process_key")
    if key and str(key).startswith("linux:"):
        fields = _stat_fields(pid)
        if fields is None or len(fields) < 20:
            return _UNKNOWN  # /proc hides it (hidepid): fall back to the heartbeat
        if fields[0] in ("Z", "X"):
            return Verdict(PID_GONE, f"{where} has exited (zombie, not yet waited for)")
        if fields[19] != str(key).rsplit(":", 1)[1]:
            return Verdict(PID_REUSED, f"{where} now belongs to another process (the pid was reused)")
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return Verdict(PID_GONE, f"{where} has exited (zombie, not yet waited for)")
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return Verdict(PID_GONE, f"{where} no longer exists")
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return _UNKNOWN
    recorded = run.get("process_started_at")
    if recorded is None:
        return _UNKNOWN
    if abs(float(started) - float(recorded)) > START_TIME_TOLERANCE_S:
        return Verdict(PID_REUSED, f"{where} now belongs to another process (the pid was reused)")
    return None
