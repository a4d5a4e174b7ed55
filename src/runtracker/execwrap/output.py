"""The command's output: passed through to our stdout byte for byte, its last N bytes kept for the run."""

from __future__ import annotations

import os
import select
import threading
import time
from typing import IO

_CHUNK = 65536
# Bytes 0x80-0xBF continue a UTF-8 character; a tail cut in the middle of one starts with up to 3 of them.
_MAX_CONTINUATION = 3


class OutputTail:
    """The last `limit` bytes of a stream (a bytearray trimmed from the front; 0 keeps nothing)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self.total += len(chunk)
            if self.limit <= 0:
                return
            if len(chunk) >= self.limit:
                self._buf[:] = chunk[-self.limit :]
                return
            self._buf += chunk
            excess = len(self._buf) - self.limit
            if excess > 0:
                del self._buf[:excess]

    def bytes(self) -> bytes:
        with self._lock:
            return bytes(self._buf)

    def text(self) -> str | None:
        """The tail as text for the database: invalid UTF-8 replaced, NUL (which PostgreSQL rejects) too.

        None when nothing is kept (limit 0). A tail that was cut starts at the next whole character.
        """
        if self.limit <= 0:
            return None
        data = self.bytes()
        if self.total > len(data):
            skip = 0
            while skip < min(_MAX_CONTINUATION, len(data)) and 0x80 <= data[skip] <= 0xBF:
                skip += 1
            data = data[skip:]
        return data.decode("utf-8", "replace").replace("\x00", "\ufffd")


class Pump(threading.Thread):
    """Copies everything the command writes to `out_fd`, unchanged, and feeds the tail.

    A thread of its own, so that a slow reader of our stdout never delays the timeout, and the main thread
    stays free to wait for the command and handle signals. If our stdout goes away (a closed pipe), the pump
    keeps reading so that the command is never blocked on a full pipe, and the tail is still kept.
    """

    def __init__(self, stream: IO[bytes], tail: OutputTail, out_fd: int = 1) -> None:
        super().__init__(name="runtracker-exec-output", daemon=True)
        self.stream = stream  # the unbuffered read end of the command's pipe: each read is one os.read
        self.tail = tail
        self.out_fd = out_fd
        self.out_broken = False
        self.last_activity = time.monotonic()

    def run(self) -> None:
        try:
            while True:
                try:
                    chunk = self.stream.read(_CHUNK)
                except (OSError, ValueError):
                    return
                if not chunk:
                    return
                self.last_activity = time.monotonic()
                self.tail.add(chunk)
                self._write(chunk)
        finally:
            try:
                self.stream.close()
            except OSError:
                pass

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and not self.out_broken:
            try:
                written = os.write(self.out_fd, view)
            except BlockingIOError:  # our stdout was left non-blocking by someone else: wait until it drains
                select.select([], [self.out_fd], [], 1.0)
                continue
            except OSError:  # EPIPE, EBADF: nobody reads our output any more
                self.out_broken = True
                return
            view = view[written:]
            self.last_activity = time.monotonic()

    def finish(self, idle: float = 1.0) -> bool:
        """After the command ended: wait for the rest of its output. True if all of it was read.

        The pipe reaches end-of-file when every process holding it has closed it. A background process the
        command left behind may hold it for hours, so we stop waiting once nothing has arrived for `idle`
        seconds, reading nor writing (the pipe is then left to that process).
        """
        while self.is_alive():
            self.join(timeout=min(idle, 0.2))
            if self.is_alive() and time.monotonic() - self.last_activity > idle:
                return False
        return True
