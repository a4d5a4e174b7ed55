"""Durations and sizes as people write them on a command line or in the pipeline config file.

Durations: ``90``, ``90s``, ``500ms``, ``30m``, ``2h``, ``1h30m``, ``1d`` (a bare number is seconds).
Sizes: ``10240``, ``10KB``, ``10K``, ``1MB``, ``1MiB`` (a bare number is bytes; K and M are 1024-based).
"""

from __future__ import annotations

import re

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Compiled (and cached by `re`) at first use, not at import: the settings, which `import runtracker` loads,
# import this module.
_DURATION_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
_SIZE = r"(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?"
_SIZE_UNITS = {None: 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}


def parse_duration(value: object) -> float:
    """Seconds in a duration such as "2h" or "1h30m"; raises ValueError with the accepted forms."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = re.findall(_DURATION_PART, text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"not a duration: {value!r} (use e.g. 90, 90s, 30m, 2h, 1h30m)") from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes in a size such as "10KB"; raises ValueError with the accepted forms."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = re.fullmatch(_SIZE, value.strip().lower())
        if match is None:
            raise ValueError(f"not a size: {value!r} (use e.g. 10240, 10KB, 1MB)")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise ValueError(f"not a size: {value!r}")
    if size < 0:
        raise ValueError(f"a size cannot be negative: {value!r}")
    return size


def format_duration(seconds: float) -> str:
    """A duration for messages: "2h", "1h30m", "90s" -> "1m30s", "0.5s"."""
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def format_size(size: int) -> str:
    if size and size % (1024**2) == 0:
        return f"{size // 1024**2}MB"
    if size and size % 1024 == 0:
        return f"{size // 1024}KB"
    return f"{size}B"
