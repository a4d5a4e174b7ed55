"""Sessions in a signed cookie, CSRF tokens, and the login rate limit.

The cookie holds a logged-in session's random id, the user's id, a fingerprint of the password hash, a CSRF
token and at most one flash message, signed with the session secret (itsdangerous) and dated: it is refused
once older than the session's maximum age. The session id must also name a row of the `sessions` table (only
its hash is stored), checked at every request: logout deletes the row, so a copied cookie stops working at once
on every server of the database; `runtracker user logout`, a password change and removing the user delete all
of the user's rows (`web.core.Web.user`). It is HttpOnly, SameSite=Lax, and Secure when
the request came over https (uvicorn sets the scheme from TLS, or from X-Forwarded-Proto of a trusted proxy).
Every POST carries the session's CSRF token (a form field or the X-CSRF-Token header), compared in constant
time; a request authenticated by an API key needs none (a browser never sends the key on its own).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "runtracker_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def new_session_id() -> str:
    """A logged-in session's id: 256 random bits."""
    return secrets.token_urlsafe(32)


def session_id_hash(session_id: str) -> str:
    """The stored form of a session id: who reads the database (a backup) learns no id a cookie could carry."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class Sessions:
    def __init__(self, secret: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="runtracker.session")
        self.max_age_s = max_age_s

    def load(self, request: Request) -> dict[str, Any]:
        """The request's session (read once per request); a new one, with a CSRF token, if it has none."""
        cached = request.scope.get("runtracker.session")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        data: dict[str, Any] | None = None
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                loaded = self._serializer.loads(raw, max_age=self.max_age_s)
                data = loaded if isinstance(loaded, dict) and isinstance(loaded.get("csrf"), str) else None
            except BadSignature:
                data = None
        if data is None:
            data = {"csrf": secrets.token_urlsafe(32)}
            request.scope["runtracker.session.dirty"] = True
        request.scope["runtracker.session"] = data
        return data

    def replace(self, request: Request, data: dict[str, Any]) -> None:
        """A new session (at login and logout): a new CSRF token too."""
        request.scope["runtracker.session"] = {**data, "csrf": secrets.token_urlsafe(32)}
        request.scope["runtracker.session.dirty"] = True

    def flash(self, request: Request, message: str) -> None:
        self.load(request)["flash"] = message
        request.scope["runtracker.session.dirty"] = True

    def pop_flash(self, request: Request) -> str | None:
        data = self.load(request)
        if "flash" not in data:
            return None
        request.scope["runtracker.session.dirty"] = True
        return str(data.pop("flash"))

    def save(self, request: Request, response: Response) -> Response:
        """Set the cookie on the response if the session changed (or is new)."""
        if request.scope.get("runtracker.session.dirty"):
            response.set_cookie(COOKIE, self._serializer.dumps(request.scope["runtracker.session"]),
                                max_age=self.max_age_s, path="/", httponly=True, samesite="lax",
                                secure=request.url.scheme == "https")
        return response

    def csrf_ok(self, request: Request, submitted: object) -> bool:
        expected = self.load(request).get("csrf")
        token = submitted if isinstance(submitted, str) and submitted else request.headers.get(CSRF_HEADER, "")
        return bool(expected) and hmac.compare_digest(str(expected).encode(), str(token).encode())


class RateLimit:
    """At most `attempts` per `window_s` seconds per client (a sliding window, in memory: one server process).
    At most `max_clients` clients are remembered; the oldest are forgotten first. The login counts failures
    only: it counts each attempt as it comes (so parallel guesses are counted before any is checked) and
    `forgive`s one that succeeded, so an office behind one address is not locked out by its own logins."""

    def __init__(self, attempts: int, window_s: float, max_clients: int = 10_000) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.max_clients = max_clients
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> float | None:
        """Count an attempt; None if it is allowed, else the seconds until the next one is."""
        now = time.monotonic()
        with self._lock:
            times = self._seen.pop(client, None) or deque()
            while times and times[0] <= now - self.window_s:
                times.popleft()
            self._seen[client] = times  # most recently seen last
            if len(times) >= self.attempts:
                return max(0.0, times[0] + self.window_s - now)
            times.append(now)
            while len(self._seen) > self.max_clients:
                del self._seen[next(iter(self._seen))]
            return None

    def forgive(self, client: str) -> None:
        """Take back the latest attempt counted for `client` (it succeeded)."""
        with self._lock:
            times = self._seen.get(client)
            if times:
                times.pop()
