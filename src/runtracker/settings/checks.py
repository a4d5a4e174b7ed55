"""The checks every setting's value goes through, wherever it came from: numbers, whole numbers, durations,
on/off words and redaction patterns. Pure: they say what is wrong, and the caller decides what is used instead.
"""

from __future__ import annotations

import math
import operator
import re

from ..base.redact import short_repr
from ..base.units import parse_duration

ON = ("1", "true", "yes", "on")
OFF = ("0", "false", "no", "off")

# A value as a warning shows it: its repr, cut short (base/redact.short_repr; `redact.shown` redacts it too).
shown = short_repr


def number(raw: object) -> float | None:
    """A finite float from a number or text; None for anything else (True is not a number here)."""
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except Exception:  # float() of an arbitrary object can raise anything
        return None
    return value if math.isfinite(value) else None


def whole_number(raw: object) -> int | None:
    """An int from an int, a float without a fraction, or digits; None for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if math.isfinite(raw) and raw.is_integer() else None
    if isinstance(raw, str):
        return int(raw) if re.fullmatch(r"\s*\d{1,12}\s*", raw) else None
    try:
        return operator.index(raw)  # type: ignore[arg-type]  # numpy's integers, for one
    except Exception:
        return None


def duration(raw: object) -> float | None:
    """Seconds from a duration (`6h`, `1h30m`) or a number; None for anything else, NaN and infinity too."""
    if isinstance(raw, bool):
        return None
    try:
        seconds = parse_duration(raw)
    except Exception:
        return None
    return seconds if math.isfinite(seconds) else None


def on_off(raw: object) -> bool | None:
    """True or False from an on/off word (1/0, true/false, yes/no, on/off, any case); None for anything else."""
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in ON or word in OFF:
        return word in ON
    return None


def redact_pattern_problem(pattern: object) -> str | None:
    """None if `pattern` can be an extra redaction pattern, else what is wrong with it."""
    if not isinstance(pattern, str) or not pattern:
        return "not a regular expression (a non-empty string)"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    if compiled.search("") is not None:
        return "a regular expression that matches empty text (it would put *** everywhere)"
    return None


def shown_seconds(seconds: float) -> str:
    """`6 h`, `60 s`: a default as a warning names it."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"
