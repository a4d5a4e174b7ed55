"""Time as runs record it: UTC wall-clock milliseconds, written as ISO-8601 text (`2026-11-26T19:27:33.598Z`).

Every stored duration is computed from the two stored timestamps (`ms_between`), never from a second clock: a
row's `duration_ms` is always exactly `finished_at − started_at`. The text sorts like the time it names.
"""

from __future__ import annotations

import functools
import time

# The one format we write: fixed width, so it is read back by slicing (a hot path of ending runs and steps).
_FORMAT = "%Y-%m-%dT%H:%M:%S"


def now_ms() -> int:
    """Milliseconds since the epoch, UTC."""
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    # A run's calls mostly fall within the same second: formatting it once is a tenth of a short call's cost.
    return time.strftime(_FORMAT, time.gmtime(seconds))


def now_iso() -> str:
    return iso(now_ms())


def to_ms(text: object) -> int | None:
    """The milliseconds an ISO-8601 timestamp names; None if it is not one (a row written by another tool).

    Our own format is read by slicing; anything else that `datetime.fromisoformat` accepts (offsets, no
    fraction, a space instead of `T`) is read too, and a naive time is taken as UTC.
    """
    if not isinstance(text, str):
        return None
    if len(text) == 24 and text[10] == "T" and text[19] == "." and text[23] == "Z":
        try:
            year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
            hour, minute, second, millis = int(text[11:13]), int(text[14:16]), int(text[17:19]), int(text[20:23])
        except ValueError:
            return None
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
            return None
        return ((_days(year, month, day) * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis
    from datetime import UTC, datetime, timedelta  # only for timestamps written by others

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Whole milliseconds by integer arithmetic: timestamp() * 1000 is a float that can fall just short.
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _days(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's days_from_civil):
    calendar.timegm without importing `calendar`, `datetime` and `locale` at start-up."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def ms_between(start: object, end: object) -> int:
    """`end − start` in milliseconds, 0 when either is unreadable or the end lies before the start."""
    a, b = to_ms(start), to_ms(end)
    return 0 if a is None or b is None or b < a else b - a


def later(a: str, b: object) -> str:
    """The later of two timestamps (`a` when `b` is unreadable): an end never lies before its start."""
    a_ms, b_ms = to_ms(a), to_ms(b)
    return b if isinstance(b, str) and a_ms is not None and b_ms is not None and b_ms > a_ms else a
