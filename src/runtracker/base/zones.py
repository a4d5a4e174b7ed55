"""Time zones for showing times: a zone name checked, and an instant written in a zone.

Every time is stored in UTC (`clock`); only what is shown to a person is local: the dashboard's pages and the
command line write an instant in the display time zone (`settings/display` says which), with UTC beside it.
One function here per way of writing one, so every page and command writes them alike:

- `local_text(ms, zone)`: `2026-03-29 03:15:00 CEST` (the dashboard);
- `offset_text(ms, zone)`: `2026-03-29 03:15:00 +02:00` (the command line: an offset is unambiguous where
  an abbreviation such as `IST` is not);
- `utc_text(ms)`: `2026-03-29 01:15:00.123 UTC`, to the millisecond stored (tooltips).

zoneinfo is imported at the first use, never by `import runtracker`.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from datetime import tzinfo

DEFAULT = "UTC"
# What an IANA zone name can hold: letters, digits, `_`, `+`, `-` and `/` (`Etc/GMT+1`,
# `America/Port-au-Prince`). Anything else (a `.`, a leading `/`) is refused before zoneinfo looks for a file.
_NAME = r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*"
MAX_NAME = 64
NOT_A_ZONE = "not a time zone"
HINT = "use a name such as Europe/Amsterdam or UTC"


@functools.lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The zoneinfo time zone `name`; ValueError when there is none of that name."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or len(name) > MAX_NAME or not re.fullmatch(_NAME, name):
        raise ValueError(f"{NOT_A_ZONE}: {name!r} ({HINT})")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{NOT_A_ZONE}: {name!r} ({HINT})") from exc


def is_zone(name: object) -> bool:
    """Whether `name` names a time zone this machine knows."""
    try:
        zone(name)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def wall(ms: int, name: str) -> datetime:
    """The instant `ms` (milliseconds since the epoch) as an aware datetime in the zone `name`."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone(name))


def local_text(ms: int, name: str) -> str:
    """`2026-03-29 03:15:00 CEST`: the instant in the zone, to the second, with the zone's abbreviation (or its
    offset, `-03`, where the zone has none)."""
    return wall(ms, name).strftime("%Y-%m-%d %H:%M:%S %Z")


def offset_text(ms: int, name: str, *, millis: bool = False) -> str:
    """`2026-03-29 03:15:00 +02:00` (with `millis`, `03:15:00.123 +02:00`): the instant in the zone, with the
    zone's offset from UTC at that instant."""
    moment = wall(ms, name)
    fraction = f".{ms % 1000:03d}" if millis else ""
    offset = moment.strftime("%z")
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')}{fraction} {offset[:3]}:{offset[3:]}"


def utc_text(ms: int) -> str:
    """`2026-03-29 01:15:00.123 UTC`: the instant as stored, to the millisecond."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')}.{ms % 1000:03d} UTC"
