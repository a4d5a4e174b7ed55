"""The end of a stream kept for the run: the last N bytes of what a command wrote (`runtracker exec`), or of what
a ping sent (the ingest API), as text the database takes."""

from __future__ import annotations

import threading

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

        None when nothing is kept (limit 0). A tail that was cut starts at the next whole line: the cut may have
        fallen inside a secret, and its second half, without the key or the shape before it, is nothing
        redaction can recognise (`api_key=k3y` cut to `3y`). A cut tail without a line break starts after its
        first space or tab instead, or, one unbroken word, at the next whole character.
        """
        if self.limit <= 0:
            return None
        data = self.bytes()
        if self.total > len(data):
            cut = data.find(b"\n")
            if cut < 0:
                cut = min((at for at in (data.find(b" "), data.find(b"\t")) if at >= 0), default=-1)
            if cut >= 0:
                data = data[cut + 1 :]
            else:
                skip = 0
                while skip < min(_MAX_CONTINUATION, len(data)) and 0x80 <= data[skip] <= 0xBF:
                    skip += 1
                data = data[skip:]
        return data.decode("utf-8", "replace").replace("\x00", "\ufffd")
