"""A TCP proxy in front of the test PostgreSQL server, so a test can make the server unreachable for one
pipeline without stopping the server that every other test uses."""

from __future__ import annotations

import socket
import threading


class Proxy:
    """Listens on 127.0.0.1:<port>. `forward` relays to the server; `reject` accepts and closes at once (a
    server that is down or restarting), counting the attempts; `drop_all` cuts every relayed connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.forwarding = True
        self.rejected = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database_url: str) -> str:
        """The same database URL, through the proxy."""
        return database_url.replace(f"{self.upstream[0]}:{self.upstream[1]}", f"127.0.0.1:{self.port}", 1)

    def reject(self) -> None:
        self.forwarding = False

    def forward(self) -> None:
        self.forwarding = True

    def drop_all(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        _close(self.listener)
        self.drop_all()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.forwarding:
                with self._lock:
                    self.rejected += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
