"""Turn whatever a pipeline hands us into values the database accepts, without ever raising.

Bad input gets a sane record: text is decoded, cleaned of NUL bytes and lone surrogates (PostgreSQL rejects
both), rid of secrets (`redact`: passwords, tokens, auth headers become `***`) and truncated; counts become
non-negative ints; stats become JSON even when they hold sets, objects or themselves, and the values of their
keys that look secret become `***`. Every writer of free text goes through here, so nothing unredacted is
stored (docs/redaction.md).
"""

from __future__ import annotations

import logging
import math

from .redact import MARK, might_hold_secret, redact, secret_key, shown

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("runtracker")

MESSAGE_LIMIT = 2000
STACK_LIMIT = 4000
NAME_LIMIT = 200
JSON_LIMIT = 65536
# The largest count a step records: a 32-bit signed integer, so that every backend's count columns hold it and
# a run's totals (sums over its steps, 64-bit columns) cannot overflow. Larger counts are clamped, with a warning.
MAX_COUNT = 2**31 - 1
# `runtracker exec`'s output tail: at most 1 MB of bytes (configfile.MAX_TAIL_BYTES), so at most as many
# characters; redaction may lengthen it a little (`pw=a` becomes `pw=***`).
TAIL_LIMIT = 2 * 1024 * 1024
_MAX_DEPTH = 20
_TRUNCATED = "…[truncated]"


def text(value: object, limit: int) -> str:
    """Any value as clean text of at most `limit` characters, with its secrets redacted."""
    # Fast path for the common case (record_errors calls this for every message): short ASCII text without
    # NUL is already clean, and the checks below run in C; `redact` returns at once for most messages.
    if type(value) is str and len(value) <= limit and value.isascii() and "\x00" not in value:
        value = redact(value)
        return value if len(value) <= limit else value[: limit - len(_TRUNCATED)] + _TRUNCATED
    return _clean(value, limit, True)


def plain_text(value: object, limit: int) -> str:
    """Clean text as `text`, not redacted: for identifiers, which are looked up as they are (member ids)."""
    if type(value) is str and len(value) <= limit and value.isascii() and "\x00" not in value:
        return value
    return _clean(value, limit, False)


def _clean(value: object, limit: int, redacting: bool) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    elif not isinstance(value, str):
        try:
            value = str(value)
        except Exception as exc:  # a __str__ that raises must not cost us the record
            value = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    # Cut before cleaning so a 1 GB message costs no more than a short one.
    if len(value) > limit * 2:
        value = value[: limit * 2]
    value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    # Redacted before it is cut to the limit: a secret cut in half would no longer look like one.
    if redacting:
        value = redact(value)
    if len(value) > limit:
        value = value[: limit - len(_TRUNCATED)] + _TRUNCATED
    return value


def exception_text(exc: BaseException) -> str:
    """`Type: message` of an exception, even when its __str__ raises."""
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    return f"{type(exc).__name__}: {message}"


def optional_text(value: object, limit: int) -> str | None:
    return None if value is None else text(value, limit)


def name(value: object, default: str = "(unnamed)") -> str:
    if value is None or (isinstance(value, str) and not value):  # not `== ""`: an object's __eq__ may raise
        return default
    return text(value, NAME_LIMIT)


def count(value: object, what: str = "count") -> int:
    """A count between 0 and MAX_COUNT; anything else becomes 0 (or is clamped) with a warning."""
    if value is None:
        return 0
    try:
        number = float(value) if not isinstance(value, int) else value  # type: ignore[arg-type]
        if isinstance(number, float):
            if math.isnan(number):
                raise ValueError("NaN")
            number = int(min(max(number, -1.0), MAX_COUNT + 1.0))
    except (TypeError, ValueError, OverflowError):
        log.warning("runtracker: %s %s is not a number; recorded as 0", what, shown(value))
        return 0
    if number < 0:
        log.warning("runtracker: %s %s is negative; recorded as 0", what, shown(value))
        return 0
    if number > MAX_COUNT:
        log.warning("runtracker: %s %s is more than %d; recorded as %d", what, shown(value), MAX_COUNT, MAX_COUNT)
        return MAX_COUNT
    return int(number)


def _plain(obj: Any, depth: int, seen: set[int]) -> Any:
    """A JSON-compatible copy of obj: cycles and unknown types become strings, never an error."""
    if obj is None or isinstance(obj, bool | str):
        return obj if not isinstance(obj, str) else text(obj, JSON_LIMIT)
    if isinstance(obj, int):
        return int(obj) if obj.bit_length() <= 64 else f"<int of {obj.bit_length()} bits>"
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if depth > _MAX_DEPTH:
        return "<too deep>"
    from datetime import date  # here: only stats that json cannot encode come this way

    if isinstance(obj, date):  # datetime is a date
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray):
        return text(obj, JSON_LIMIT)
    if isinstance(obj, dict | list | tuple | set | frozenset):
        if id(obj) in seen:
            return "<cycle>"
        seen.add(id(obj))
        try:
            if isinstance(obj, dict):
                return dict(_item(k, v, depth, seen) for k, v in list(obj.items()))
            return [_plain(v, depth + 1, seen) for v in list(obj)]
        finally:
            seen.discard(id(obj))
    if isinstance(obj, BaseException):
        return text(exception_text(obj), MESSAGE_LIMIT)
    try:
        return text(repr(obj), MESSAGE_LIMIT)
    except Exception as exc:  # a __repr__ that raises must not cost the rest of the stats
        return f"<unprintable {type(obj).__name__}: {type(exc).__name__}>"


def _item(key: object, value: Any, depth: int, seen: set[int]) -> tuple[str, Any]:
    """A dict's item; its value is `***` when its key names a secret (`password`, `api_key`, `Authorization`),
    whatever the value is. None and booleans say nothing secret and stay."""
    name = text(key, NAME_LIMIT)
    if value is not None and not isinstance(value, bool) and secret_key(name):
        return name, MARK
    return name, _plain(value, depth + 1, seen)


def to_json(obj: object) -> str | None:
    """Serialise stats or detail to JSON text, with secrets redacted; None stays None."""
    if obj is None:
        return None
    import json  # here: most calls of a run have no stats or detail, and `import runtracker` stays cheap

    try:
        encoded = json.dumps(obj, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        encoded = json.dumps(_plain(obj, 0, set()), allow_nan=False, ensure_ascii=False)
    else:
        # One cheap look at the whole document; only one that may hold a secret is rebuilt value by value
        # (`_plain` redacts every string and replaces the values of secret keys).
        if might_hold_secret(encoded):
            encoded = json.dumps(_plain(obj, 0, set()), allow_nan=False, ensure_ascii=False)
    encoded = plain_text(encoded, JSON_LIMIT * 4)  # its strings are redacted already
    if len(encoded) > JSON_LIMIT * 4 - len(_TRUNCATED):
        # A truncated JSON document is not JSON: keep a valid one that says what happened.
        encoded = json.dumps({"truncated": True, "preview": encoded[:JSON_LIMIT]}, ensure_ascii=False)
    return encoded
