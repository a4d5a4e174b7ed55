"""Why a command died of SIGKILL: the kernel's OOM killer, or someone's `kill -9`?

Two best-effort sources, read without ever failing:
- the kernel log (`/dev/kmsg`, readable by root or when kernel.dmesg_restrict=0): opened when the command
  starts and positioned at its end, so only messages logged while the command ran are read, and searched for
  the OOM killer naming the command's pid;
- the cgroup v2 `memory.events` file of our cgroup (readable by anyone; under systemd the unit's cgroup): its
  `oom_kill` counter going up while the command ran means the OOM killer killed a process of this cgroup.
If neither can be read, the message says "out of memory?" — the likeliest reason a job dies of SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re

KILLED_BY_OOM = "killed by SIGKILL: out of memory (the kernel's OOM killer: {evidence})"
KILLED_MAYBE_OOM = "killed by SIGKILL (out of memory?)"
KILLED = "killed by SIGKILL"

_KMSG = "/dev/kmsg"
_MAX_RECORDS = 100_000
_OOM_PATTERNS = (
    re.compile(r"Killed process (\d+)\b"),  # "Out of memory: Killed process 4321 (node) total-vm:..."
    re.compile(r"\boom-kill:.*\bpid=(\d+)\b"),  # "oom-kill:constraint=...,task=node,pid=4321,uid=1000"
)


class OomWatch:
    """Started with the command; asked after it died of SIGKILL."""

    def __init__(self) -> None:
        self._kmsg = _open_kmsg()
        self._cgroup_events = _cgroup_memory_events()
        self._oom_kills = _oom_kill_count(self._cgroup_events)

    def reason(self, pid: int) -> str:
        """The message for a command (pid) that died of SIGKILL."""
        if self._kmsg is not None:
            line = _find_oom(_read_records(self._kmsg), pid)
            if line:
                return KILLED_BY_OOM.format(evidence=line)
        after = _oom_kill_count(self._cgroup_events)
        if self._oom_kills is not None and after is not None and after > self._oom_kills:
            return KILLED_BY_OOM.format(
                evidence=f"oom_kill went from {self._oom_kills} to {after} in {self._cgroup_events}")
        # One readable source that saw no OOM kill is enough to say it was not one.
        if self._kmsg is not None or (self._oom_kills is not None and after is not None):
            return KILLED
        return KILLED_MAYBE_OOM

    def close(self) -> None:
        if self._kmsg is not None:
            with contextlib.suppress(OSError):
                os.close(self._kmsg)
            self._kmsg = None


def _open_kmsg() -> int | None:
    try:
        fd = os.open(_KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        os.lseek(fd, 0, os.SEEK_END)  # only what the kernel logs from now on
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_records(fd: int) -> list[str]:
    """Every record logged since the fd was opened (one record per read; EAGAIN when there are no more)."""
    records: list[str] = []
    while len(records) < _MAX_RECORDS:
        try:
            data = os.read(fd, 8192)
        except BrokenPipeError:  # records were overwritten before we read them: go on with the next ones
            continue
        except OSError:
            break
        if not data:
            break
        records.append(data.decode("utf-8", "replace"))
    return records


def _find_oom(records: list[str], pid: int) -> str | None:
    for record in records:
        message = record.split(";", 1)[-1].strip()
        for pattern in _OOM_PATTERNS:
            match = pattern.search(message)
            if match and int(match.group(1)) == pid:
                return message.splitlines()[0][:300]
    return None


def _cgroup_memory_events() -> str | None:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                if line.startswith("0::"):
                    path = "/sys/fs/cgroup" + line[3:].strip().rstrip("/") + "/memory.events"
                    return path if os.path.exists(path) else None
    except OSError:
        pass
    return None


def _oom_kill_count(path: str | None) -> int | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return None
