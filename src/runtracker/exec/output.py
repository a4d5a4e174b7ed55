"""The command's output: its stdout to our stdout, its stderr to our stderr, byte for byte; the last N bytes of
both, in the order they arrived, kept for the run (a `base.tail.OutputTail`)."""

from __future__ import annotations

import os
import select
import threading
import time
from typing import IO

from ..base.tail import OutputTail

_CHUNK = 65536


class Pump(threading.Thread):
    """Copies everything the command writes on one stream to ours, unchanged, and feeds the shared tail.

    A thread per stream, so that a slow reader of our stdout never delays the timeout nor the command's
    stderr, and the main thread stays free to wait for the command and handle signals.

    If the reader of our stream goes away (EPIPE), the pump stops reading and closes our read end of the
    command's pipe: the command's next write to it (or the one it is blocked in) then fails with EPIPE, or
    kills it by SIGPIPE, exactly as if it had written to that reader itself. `yes | head -1` thus ends at
    once, with or without the wrapper. Any other failure to write (EBADF, EIO of a hung-up terminal) cannot
    be passed on like that: the pump keeps reading and discards, so the command is never blocked on a full
    pipe by us, and the tail is still kept.
    """

    def __init__(self, stream: IO[bytes], tail: OutputTail, out_fd: int = 1, name: str = "stdout") -> None:
        super().__init__(name=f"runtracker-exec-{name}", daemon=True)
        self.stream = stream  # the unbuffered read end of the command's pipe: each read is one os.read
        self.tail = tail
        self.out_fd = out_fd
        self.stream_name = name
        self.reader_gone = False  # EPIPE: our reader went away, and the command's pipe was closed for it
        self.out_broken = False  # another write error: what the command writes is read and discarded
        self.last_activity = time.monotonic()

    def run(self) -> None:
        try:
            while not self.reader_gone:
                try:
                    chunk = self.stream.read(_CHUNK)
                except (OSError, ValueError):
                    return
                if not chunk:
                    return
                self.last_activity = time.monotonic()
                # Into the tail before it is passed on: the tail holds both streams in the order their chunks
                # arrived, and whatever a reader of our output has seen is already in it.
                self.tail.add(chunk)
                self._write(chunk)
        finally:
            # `reader_gone` is set before this close: whoever sees the command die of SIGPIPE sees the flag.
            try:
                self.stream.close()
            except OSError:
                pass

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and not self.out_broken:
            try:
                written = os.write(self.out_fd, view)
            except BlockingIOError:  # our stream was left non-blocking by someone else: wait until it drains
                select.select([], [self.out_fd], [], 1.0)
                continue
            except BrokenPipeError:  # the reader went away: pass that on (see the class docstring)
                self.reader_gone = True
                return
            except OSError:  # EBADF, EIO: nobody reads our output any more, and the command cannot be told
                self.out_broken = True
                return
            view = view[written:]
            self.last_activity = time.monotonic()


class Passthrough:
    """The command's stdout and stderr, each copied to ours by a pump of its own, both into one tail."""

    def __init__(self, stdout: IO[bytes], stderr: IO[bytes], tail: OutputTail) -> None:
        self.pumps = (Pump(stdout, tail, 1, "stdout"), Pump(stderr, tail, 2, "stderr"))

    def start(self) -> None:
        for pump in self.pumps:
            pump.start()

    def finish(self, idle: float = 1.0) -> bool:
        """After the command ended: wait for the rest of its output. True if all of it was read.

        A pipe reaches end-of-file when every process holding it has closed it. A background process the
        command left behind may hold one for hours, so we stop waiting once, since the command ended, nothing
        has arrived on either for `idle` seconds, reading nor writing (the pipes are then left to that process).
        """
        began = time.monotonic()
        while True:
            running = [pump for pump in self.pumps if pump.is_alive()]
            if not running:
                return True
            if time.monotonic() - max(began, *(pump.last_activity for pump in running)) > idle:
                return False
            running[0].join(timeout=min(idle, 0.2))

    def readers_gone(self) -> list[str]:
        """The streams ("stdout", "stderr") whose reader went away while the command wrote to them."""
        return [pump.stream_name for pump in self.pumps if pump.reader_gone]
