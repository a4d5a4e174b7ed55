"""Helpers of the alerts' tests (fixtures are in conftest.py): a real SMTP server (aiosmtpd) and a real HTTP
receiver on localhost, a clock the test moves, monitors in-process or as real processes, and reading the alert
tables back."""

from __future__ import annotations

import email
import http.server
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from helpers import app_env, open_fresh, wait_until
from runtracker.alerts.watcher import Watcher
from runtracker.monitor import loop
from runtracker.storage.alerts import AlertStore

# How long stopping an in-process monitor waits for its threads (a send in progress ends within Apprise's
# timeouts): a bound on waiting, not on speed.
STOP_WAIT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """A real SMTP server on localhost; `messages` are the plain-text mails it received, as (subject, body)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content)
        body = ""
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                body = part.get_payload(decode=True).decode().replace("\r\n", "\n")
        self.messages.append((str(message["Subject"]), body))
        return "250 OK"

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=runtracker@example.org&to=ops@example.org&mode=insecure"

    def wait_for(self, count: int, what: str = "mails") -> list[tuple[str, str]]:
        return wait_until(lambda: self.messages if len(self.messages) >= count else None, f"{count} {what}")

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


class Receiver:
    """A real HTTP server on localhost receiving Apprise's JSON webhook posts; `posts` are their bodies."""

    def __init__(self, port: int | None = None, answer_after_s: float = 0.0, status: int = 200) -> None:
        self.posts: list[dict[str, Any]] = []
        self.port = port or free_port()
        self.answer_after_s = answer_after_s  # a slow receiver: the post is kept at once, answered this much later
        self.status = status  # 500: a receiver that is up but broken
        self._server: http.server.ThreadingHTTPServer | None = None

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        posts, answer_after_s, status = self.posts, self.answer_after_s, self.status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                posts.append(json.loads(self.rfile.read(length)))
                time.sleep(answer_after_s)
                self.send_response(status)
                self.end_headers()
                if status >= 400:
                    self.wfile.write(b"the receiver is broken")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def wait_for(self, count: int, what: str = "posts") -> list[dict[str, Any]]:
        return wait_until(lambda: self.posts if len(self.posts) >= count else None, f"{count} {what}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Clock:
    """The watcher's clock, in milliseconds since the epoch, which the test moves."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class InProcessMonitor:
    """`loop.monitor` with a Watcher in a thread of the test process, on a store of its own."""

    def __init__(self, db_url: str, config: Path, clock: Callable[[], int] | None = None,
                 interval: float = 0.2) -> None:
        self.store = open_fresh(db_url)
        kwargs = {"clock": clock} if clock is not None else {}
        self.watcher = Watcher(self.store, str(config), **kwargs)
        self.stop_event = threading.Event()
        self.errors: list[Exception] = []
        self.watcher.start()
        self.thread = threading.Thread(target=loop.monitor, args=(self.store,), name=loop.THREAD_NAME, kwargs={
            "interval": interval, "stop": self.stop_event, "watcher": self.watcher,
            "on_error": self.errors.append})
        self.thread.start()

    def stop(self) -> None:
        """Stop the loop and the sending threads, joined, before the store closes under them. A send in progress
        is waited for (`Watcher.stop` gives up after 5 s, which a loaded machine's first Apprise send can take:
        the thread then wrote into the closed store, "Cannot operate on a closed database")."""
        self.stop_event.set()
        self.thread.join(STOP_WAIT_S)
        stopped = self.watcher.deliverer.stop(wait_s=STOP_WAIT_S)
        assert not self.thread.is_alive() and stopped, "the monitor's threads did not stop"
        self.store.close()
        assert self.errors == []


class MonitorProcess:
    """`runtracker monitor` as a real process. Its output goes to files, not pipes: nobody reads a pipe while the
    test runs, and a monitor that logs more than a pipe holds (64 KiB: errors while a loaded database is slow)
    would block on its next line and stop sending alerts."""

    def __init__(self, db_url: str, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self._out = tempfile.TemporaryFile("w+")
        self._err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtracker", "monitor", "--db", db_url, "--config", str(config), *args],
            env=app_env(db_url, env), stdout=self._out, stderr=self._err, text=True)
        self.said: tuple[str, str] | None = None

    def stop(self) -> tuple[str, str]:
        """SIGTERM, and what it wrote (stdout, stderr); the same again if stopped before."""
        if self.said is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            said = []
            for file in (self._out, self._err):
                file.seek(0)
                said.append(file.read())
                file.close()
            self.said = (said[0], said[1])
        return self.said


def alerts_of(db_url: str) -> list[dict[str, Any]]:
    store = open_fresh(db_url)
    try:
        return list(reversed(AlertStore(store).alerts()))
    finally:
        store.close()


def deliveries_of(db_url: str) -> list[dict[str, Any]]:
    store = open_fresh(db_url)
    try:
        return AlertStore(store).deliveries()
    finally:
        store.close()


def wait_for_mark(db_url: str) -> None:
    """Until a monitor has started on the database (its first pass leaves the mark): a run that starts later is
    news to it."""
    def marked() -> bool:
        store = open_fresh(db_url)
        try:
            return AlertStore(store).mark("runs") is not None
        finally:
            store.close()

    wait_until(marked, "the monitor's first pass")

