"""The ingest API's HTTP plumbing: the API key and its rate limit, the body and its size limit, idempotency keys,
reading fields, and JSON errors that name the field (docs/ingest.md). The endpoints themselves are in `ingest`.

Every ingest endpoint is a plain function of a `Call` that returns (status, body) or raises `Problem`;
`endpoint()` wraps it: 401 without a key, 429 over the key's rate, 413 over the body limit, then the
idempotency key, then the function in the thread pool (the database calls block), as one transaction: every
store call it makes joins it, and with an idempotency key the claim and the stored response do too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..base import sanitize
from ..base.clock import iso, now_ms
from ..storage.auth import ApiKey
from ..storage.base import disk_full
from ..storage.ingest import BUSY, DONE, MISMATCH, Ingest
from .bodies import BodyRefused, capped_body
from .core import Web, web_of

log = logging.getLogger("runtracker.web")

MAX_BODY_BYTES = 256 * 1024
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_TTL_S = 24 * 3600  # how long a response is kept for retries
# A claim without a response older than this is taken over. This version never commits one (the claim commits
# with the response); a server before it, that died while handling the request, may have left one.
ABANDONED_S = 60.0
PRUNE_EVERY_S = 60.0
MAX_IDEMPOTENCY_KEY = 255

NO_KEY = "an API key with write access is required (Authorization: Bearer KEY, or X-API-Key: KEY)"
READ_ONLY = "this API key is read-only: make one with `runtracker user key-add NAME --write PIPELINE`"


DISK_FULL = "the database's disk is full: nothing can be recorded until space is freed; retry later"
DISK_FULL_RETRY_S = 60


class Problem(Exception):
    """A request refused: its status, a sentence, and the field it is about (None: the request as a whole)."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, **self.extra}


class TokenBucket:
    """At most `rate` requests a second per client, in bursts of up to `burst` (in memory: one server process).
    The same shape as the login's `RateLimit`: `hit` says None, or the seconds until the next request is
    allowed. `rate` 0: no limit. At most `max_clients` clients are remembered, the least recent forgotten."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_clients = max_clients
        self._buckets: dict[object, tuple[float, float]] = {}  # client -> (tokens, when)
        self._lock = threading.Lock()

    def hit(self, client: object) -> float | None:
        if self.rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)  # most recently seen last
            while len(self._buckets) > self.max_clients:
                del self._buckets[next(iter(self._buckets))]
        return None if allowed else (1.0 - tokens) / self.rate


class IngestState:
    """What the ingest API keeps in the server process: the rate limits and when keys were last pruned."""

    def __init__(self, web: Web) -> None:
        self.ingest = web.ingest
        settings = web.settings
        self.limit = TokenBucket(settings.api_rate, settings.api_burst)
        self._pruned = -PRUNE_EVERY_S
        self._lock = threading.Lock()

    def maybe_prune(self) -> None:
        """Forget old idempotency keys, at most once a minute (as requests come: no thread of its own)."""
        now = time.monotonic()
        with self._lock:
            if now - self._pruned < PRUNE_EVERY_S:
                return
            self._pruned = now
        self.ingest.prune(iso(now_ms() - IDEMPOTENCY_TTL_S * 1000))


class Call:
    """One ingest request, as an endpoint function sees it."""

    __slots__ = ("web", "ingest", "key", "params", "raw", "after", "_json")

    def __init__(self, web: Web, ingest: Ingest, key: ApiKey, params: dict[str, Any], raw: bytes) -> None:
        self.web = web
        self.ingest = ingest
        self.key = key
        self.params = params  # the path's parameters
        self.raw = raw  # the body as sent
        self.after: list[Callable[[], None]] = []  # done once the request's transaction has committed
        self._json: Any = None

    def json(self, empty: Any = None) -> Any:
        """The body as JSON (`empty` for an empty body); 400 if it is not JSON."""
        if not self.raw.strip():
            return empty
        if self._json is None:
            try:
                self._json = json.loads(self.raw, parse_constant=_not_json, parse_float=_finite)
            except (ValueError, RecursionError):
                raise Problem(400, "the body is not JSON") from None
        return self._json


Handler = Callable[[Call], tuple[int, dict[str, Any]]]


def _not_json(constant: str) -> Any:
    """Python's json reads NaN, Infinity and -Infinity, which JSON does not have: refused wherever they are."""
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    """A number too large for a float (1e999) would be read as infinity: refused as NaN and Infinity are."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def api_key_of(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused (413) past `limit` bytes (`capped_body`)."""
    try:
        return await capped_body(request, limit)
    except BodyRefused as refused:
        raise Problem(refused.status, refused.message) from None


def problem_response(problem: Problem) -> JSONResponse:
    headers = {}
    if problem.status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(float(problem.extra.get("retry_after_s", 1)))))
    return JSONResponse(problem.body(), status_code=problem.status, headers=headers)


def endpoint(handler: Handler) -> Callable[[Request], Any]:
    """An ingest endpoint: the key, its rate, the body, the idempotency key, then `handler` in the pool."""

    async def serve(request: Request) -> Response:
        web = web_of(request)
        state: IngestState = request.app.state.ingest
        try:
            secret = api_key_of(request)
            # A key remembered a moment ago needs no trip to the thread pool (see `Web.api_key`).
            key = (web.remembered_api_key(secret) or await run_in_threadpool(web.api_key, secret)) if secret else None
            if key is None:
                raise Problem(401, NO_KEY)
            wait = state.limit.hit(key.key_id)
            if wait is not None:
                raise Problem(429, f"more than {state.limit.rate:g} requests a second with this key",
                              retry_after_s=round(wait, 3))
            raw = await read_body(request)
            idempotency = _idempotency_key(request)
            call = Call(web, state.ingest, key, dict(request.path_params), raw)
            request_hash = _request_hash(request, raw) if idempotency is not None else ""
            status, body, replayed = await run_in_threadpool(_handle, state, call, handler, idempotency,
                                                             request_hash)
        except Problem as problem:
            return problem_response(problem)
        except Exception as exc:  # a database that fails: the client gets JSON too, and may retry
            if disk_full(exc):  # retrying at once does not help; freeing space does (docs/ingest.md)
                log.error("runtracker: %s %s not recorded: the database's disk is full", request.method,
                          request.url.path)
                return problem_response(Problem(503, DISK_FULL, retry_after_s=DISK_FULL_RETRY_S))
            log.error("runtracker: %s %s failed (%s: %s)", request.method, request.url.path, type(exc).__name__,
                      exc)
            return problem_response(Problem(500, "the request could not be recorded; retry it (with the same "
                                                 f"{IDEMPOTENCY_HEADER})"))
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(body, status_code=status, headers=headers)

    serve.__name__ = handler.__name__
    serve.__doc__ = handler.__doc__
    return serve


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not value or len(value) > MAX_IDEMPOTENCY_KEY or not value.isprintable():
        raise Problem(400, f"an {IDEMPOTENCY_HEADER} is 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
                      IDEMPOTENCY_HEADER)
    return value


def _request_hash(request: Request, raw: bytes) -> str:
    # The scope's path, not `request.url.path`: the same text here (no root path), and building the URL cost
    # about 5% of a request's time in the server.
    digest = hashlib.sha256(f"{request.method} {request.scope['path']}\n".encode())
    digest.update(raw)
    return digest.hexdigest()


def _handle(state: IngestState, call: Call, handler: Handler, idempotency: str | None,
            request_hash: str) -> tuple[int, dict[str, Any], bool]:
    """Run the handler as one transaction, once per idempotency key: a retry gets the stored response; the same
    key with another request is 422; a retry while the first is being handled waits for it (`Ingest.once`)."""
    if idempotency is None:
        status, body = state.ingest.atomically(lambda: handler(call))
        replayed = False
    else:
        state.maybe_prune()
        now = now_ms()
        found, stored = state.ingest.once(lambda: handler(call), call.key.key_id, idempotency, request_hash,
                                          iso(now), iso(now - int(ABANDONED_S * 1000)))
        if found == BUSY:
            raise Problem(409, f"a request with this {IDEMPOTENCY_HEADER} is being handled; retry later",
                          IDEMPOTENCY_HEADER)
        if found == MISMATCH:
            raise Problem(422, f"this {IDEMPOTENCY_HEADER} was used for another request (another path or body)",
                          IDEMPOTENCY_HEADER)
        assert stored is not None
        status, body, replayed = int(stored["status"]), stored["body"], found == DONE
    for then in call.after:
        then()
    return status, body, replayed


# -- reading fields ------------------------------------------------------------------------------------------
def path(where: str, name: str | int) -> str:
    """A field's name in an error: `message`, `[2].message`, `crash.stack`."""
    if isinstance(name, int):
        return f"{where}[{name}]"
    return f"{where}.{name}" if where else name


def fields(value: Any, allowed: tuple[str, ...], where: str = "") -> dict[str, Any]:
    """A JSON object whose fields are all among `allowed` (an unknown field is refused: a typo is not lost)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Problem(422, "a JSON object is expected", where or None)
    for name in value:
        if name not in allowed:
            raise Problem(422, f"unknown field `{name}` (known: {', '.join(allowed)})", path(where, name))
    return value


def text(body: dict[str, Any], name: str, where: str = "", *, required: bool = False,
         numbers: bool = False) -> str | None:
    """A string field (or, with `numbers`, a number, as text); None when absent or null."""
    value = body.get(name)
    if value is None:
        if required:
            raise Problem(422, f"`{name}` is required", path(where, name))
        return None
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise Problem(422, f"`{name}` must be a string", path(where, name))
    return value


def name(body: dict[str, Any], field: str, where: str = "", *, required: bool = False) -> str | None:
    """A name (pipeline, step, club): a non-empty string, cleaned and cut as the Python API does."""
    value = text(body, field, where, required=required)
    if value is None:
        return None
    if not value.strip():
        raise Problem(422, f"`{field}` must not be empty", path(where, field))
    return sanitize.name(value)


def integer(body: dict[str, Any], field: str, where: str = "", low: int = -(2**31),
            high: int = 2**31 - 1) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Problem(422, f"`{field}` must be a whole number from {low} to {high}", path(where, field))
    return value


def count(body: dict[str, Any], field: str) -> int:
    """A count: a number (clamped to 0..2^31-1 as the Python API does); anything else is refused."""
    value = body.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise Problem(422, f"`{field}` must be a number", field)
    return sanitize.count(value, field)


def choice(body: dict[str, Any], field: str, allowed: tuple[str, ...], where: str = "", *,
           required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise Problem(422, f"`{field}` must be one of {', '.join(allowed)}", path(where, field))
    return value
