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
        # Armed by `cut_after_commit`: the next COMMIT a client sends reaches the server, which commits and
        # answers; the answer is thrown away and both sides are closed (the client never learns it committed).
        # Armed by `cut_before_commit`: the next COMMIT never reaches the server, which rolls back.
        self.cut_next_commit = False
        self.commit_next = True
        self.cuts = 0
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

    def cut_after_commit(self) -> None:
        self.cut_next_commit, self.commit_next = True, True

    def cut_before_commit(self) -> None:
        self.cut_next_commit, self.commit_next = True, False

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
            link = _Link()
            threading.Thread(target=self._to_server, args=(client, server, link), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client, link), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket, link: _Link) -> None:
        try:
            while data := client.recv(65536):
                if self.cut_next_commit and b"COMMIT" in data:
                    # Set before the COMMIT is sent on, so the answer finds it set.
                    self.cut_next_commit = False
                    link.cut = True
                    if not self.commit_next:
                        with self._lock:
                            self.cuts += 1
                        break
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)

    def _to_client(self, server: socket.socket, client: socket.socket, link: _Link) -> None:
        try:
            while data := server.recv(65536):
                if link.cut:
                    # The server answers a COMMIT only once it has committed.
                    with self._lock:
                        self.cuts += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)
            _close(client)


class _Link:
    """One relayed connection: `cut` once its COMMIT's answer must be thrown away."""

    __slots__ = ("cut",)

    def __init__(self) -> None:
        self.cut = False


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
