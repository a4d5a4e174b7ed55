"""Signals while the command runs: passed on to it, never fatal to the wrapper before the run is recorded.

The command runs in the wrapper's own process group, as a shell runs a foreground command. So a terminal's
Ctrl-C (SIGINT) or Ctrl-\\ (SIGQUIT), which the kernel sends to the whole foreground process group, already
reaches the command: while the wrapper is in its terminal's foreground group these two are not passed on
again (a second SIGINT would interrupt the command's own clean-up). Every other SIGINT, SIGQUIT, SIGTERM and
SIGHUP is sent on to the command, once; the command's reaction decides what happens, and the wrapper keeps
waiting for it. A separate process group would have made the terminal stop a command that reads it
(SIGTTIN) and turned Ctrl-Z into a hang, which is why we do not use one.

A signal the wrapper was started with ignored (`nohup`, a background job of a script) stays ignored, for the
wrapper and for the command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

FORWARDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)
# What a terminal sends to its foreground process group (the command is in it, with us).
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
_CORE_DUMPING = {signal.SIGQUIT, signal.SIGILL, signal.SIGTRAP, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE,
                 signal.SIGSEGV, signal.SIGSYS, signal.SIGXCPU, signal.SIGXFSZ}


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Forwarder:
    """Installs handlers that pass signals on to the command (see the module docstring)."""

    def __init__(self) -> None:
        self.received: list[int] = []  # every forwarded-kind signal the wrapper got
        self.passed_on: list[int] = []  # those it sent on to the command
        self._send: Any = None  # a callable taking a signal number, once the command exists
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}
        self._tty = _controlling_terminal()

    def install(self) -> None:
        for signum in FORWARDED:
            current = signal.getsignal(signum)
            if current == signal.SIG_IGN or current is None:  # ignored stays ignored; non-Python handlers stay
                continue
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, previous)
        self._previous.clear()
        if self._tty is not None:
            with contextlib.suppress(OSError):
                os.close(self._tty)
            self._tty = None

    def attach(self, send: Any) -> None:
        """The command has started: signals go to `send` from now on (those that came before, too)."""
        self._send = send
        pending, self._pending = self._pending, []
        for signum in pending:
            self.passed_on.append(signum)
            send(signum)

    def detach(self) -> None:
        """The command has ended: later signals are only remembered (its pid may be reused), and the wrapper
        goes on recording the run; it then exits as the command did."""
        self._send = None
        self._pending = []

    def _handle(self, signum: int, frame: Any) -> None:
        # A Python signal handler runs in the main thread between bytecodes; the main thread is waiting for
        # the command (or reading the database), and that wait carries on after this returns (PEP 475).
        self.received.append(signum)
        if signum in TERMINAL_SIGNALS and self._in_terminal_foreground():
            return
        if self._send is None:
            self._pending.append(signum)
        else:
            self.passed_on.append(signum)
            self._send(signum)

    def _in_terminal_foreground(self) -> bool:
        if self._tty is None:
            return False
        try:
            return os.tcgetpgrp(self._tty) == os.getpgrp()
        except OSError:
            return False


def _controlling_terminal() -> int | None:
    try:
        return os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:  # no controlling terminal: cron, systemd, a container without -t
        return None


def die_by_signal(signum: int) -> None:
    """End this process by `signum`, as the command ended, so that cron or systemd see the same.

    A core dump of the wrapper would be useless (and could fill a disk): core-dumping signals are re-raised
    with RLIMIT_CORE set to 0. If the signal does not end us, exit 128 + N, as a shell reports it.
    """
    if signum in _CORE_DUMPING:
        with contextlib.suppress(Exception):
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    with contextlib.suppress(Exception):  # SIGKILL and SIGSTOP cannot be caught, nor their disposition set
        signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    with contextlib.suppress(Exception):
        os.kill(os.getpid(), signum)
        time.sleep(1.0)  # delivery is asynchronous; it normally ends us within microseconds
    os._exit(128 + signum)
