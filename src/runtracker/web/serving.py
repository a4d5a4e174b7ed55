"""How `runtracker serve` reads connections: uvicorn's h11 protocol with a deadline for a request's headers.

uvicorn times out an idle keep-alive connection, but not a request whose headers are still coming: a client
that connects and sends half a request line holds a connection (and its memory) for as long as it likes, and a
hundred such sockets stayed open for minutes. Here each request's headers must be complete within
`header_timeout_s` of the connection opening, or of the previous response ending; else the connection is
closed. The body is not under this deadline (the ingest API's bodies are capped in size instead).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT_S = 10.0


class HeaderDeadline(H11Protocol):
    """H11Protocol that closes a connection whose request headers are not complete within `header_timeout_s`."""

    header_timeout_s = DEFAULT_HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # h11 leaves IDLE once a request's headers are parsed (SEND_BODY, DONE, or an error state).
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's headers are due in time too (a keep-alive connection)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_header_deadline", None) is not None:
            self._header_deadline.cancel()  # type: ignore[union-attr]
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def header_deadline(seconds: float) -> type[HeaderDeadline]:
    """The protocol class for uvicorn's `http=` with this deadline."""
    attributes: dict[str, Any] = {"header_timeout_s": seconds}
    return type("HeaderDeadline", (HeaderDeadline,), attributes)
