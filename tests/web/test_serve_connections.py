"""`runtracker serve` as a real uvicorn subprocess: what reaches it over a socket — a request whose headers never
finish, and X-Forwarded-For from a client that is not a trusted proxy."""

from __future__ import annotations

import http.cookiejar
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from weblib import CSRF

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))

from browserlib import Dashboard, start_dashboard, stop_dashboard  # noqa: E402

pytestmark = pytest.mark.subprocess


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[Dashboard]:
    """`runtracker serve` with a one-second deadline for a request's headers, default proxy settings."""
    dashboard = start_dashboard(sqlite_url, tmp_path / "serve.log", extra_args=["--header-timeout", "1"])
    try:
        yield dashboard
    finally:
        stop_dashboard(dashboard)


def _browser() -> urllib.request.OpenerDirector:
    """An HTTP client with cookies and no proxy from the environment."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _connect(dashboard: Dashboard) -> socket.socket:
    where = urlsplit(dashboard.url)
    sock = socket.create_connection((where.hostname, where.port))
    sock.settimeout(60)  # a bound on waiting, far past the deadline: not a measure of it
    return sock


@pytest.mark.parametrize("sent", [b"GET /hea", b"GET /health HTTP/1.1\r\nHost: x\r\n", b""])
def test_a_request_whose_headers_never_finish_is_closed_by_the_server(served, sent):
    """Half a request line, headers without their blank line, or nothing at all: the server closes the socket
    (it used to keep it open for good); a whole request on another connection is still answered."""
    sock = _connect(served)
    try:
        sock.sendall(sent)
        assert sock.recv(1024) == b"", served.output()
    finally:
        sock.close()
    with _browser().open(served.url + "/health", timeout=60) as answer:
        assert answer.status == 200


def test_a_keep_alive_connection_gets_the_deadline_for_its_next_request_too(served):
    """After one answered request, half of the next one on the same connection is closed too."""
    sock = _connect(served)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /hea")
        assert sock.recv(1024) == b""
    finally:
        sock.close()


def test_x_forwarded_for_from_a_local_client_does_not_pick_its_login_bucket(served):
    """By default no proxy is trusted: five failed logins from this host, each claiming another address, and
    the sixth is 429."""
    statuses = []
    browser = _browser()
    for i in range(6):
        with browser.open(served.url + "/login", timeout=60) as page:
            token = CSRF.search(page.read().decode()).group(1)
        form = urlencode({"username": "nobody", "password": "wrong", "csrf_token": token}).encode()
        request = urllib.request.Request(served.url + "/login", data=form, headers={"X-Forwarded-For": f"10.1.0.{i}"})
        try:
            with browser.open(request, timeout=60) as answer:
                statuses.append(answer.status)
        except urllib.error.HTTPError as refused:
            statuses.append(refused.code)
    assert statuses == [401] * 5 + [429], served.output()
