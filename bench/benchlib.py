"""Shared helpers for the benchmarks: side-by-side alternation, medians, the machine, RESULTS.md sections.

Every figure is measured side by side in one run: A and B alternate over several rounds (the order flips
each round so neither side always runs on a warmer cache), and the reported value is the median of the
per-round ratios. On a shared, noisy machine absolute times wander; a ratio of two things measured a few
milliseconds apart does not wander much.
"""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CACHE = BENCH_DIR / ".cache"
RESULTS = BENCH_DIR / "RESULTS.md"


def cache_dir() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE


def alternate(rounds: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each side once per round, flipping the order every round; each side returns its own measure."""
    names = list(sides)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            results[name].append(sides[name]())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            if match:
                cpu = match.group(1).strip()
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": _memory(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "os": f"{platform.system()} {platform.release()}",
        "disk": _disk(cache_dir()),
    }


def _memory() -> str:
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1))  # type: ignore[union-attr]
        return f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError, ValueError):
        return "?"


def _disk(path: Path) -> str:
    """Device, filesystem and whether it is rotational, for the filesystem holding `path`."""
    try:
        out = subprocess.run(["findmnt", "-no", "SOURCE,FSTYPE", "-T", str(path)], capture_output=True,
                             text=True, timeout=5).stdout.split()
        source, fstype = out[0], out[1]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"
    kind = ""
    device = os.path.basename(source)
    base = re.sub(r"p?\d+$", "", device)
    for name in (device, base):
        try:
            rotational = Path(f"/sys/block/{name}/queue/rotational").read_text().strip()
            kind = f", rotational={rotational} as the kernel reports it"
            break
        except OSError:
            continue
    return f"{source} ({fstype}{kind})"


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """A markdown table: metric, value, goal, how it was measured."""
    header = ("metric", "value", "goal", "measured as")
    lines = [_row(header), _row(tuple("---" for _ in header))]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def verdict(value: float, goal: float, higher_is_better: bool) -> str:
    met = value >= goal if higher_is_better else value <= goal
    return ("≥ " if higher_is_better else "≤ ") + f"{goal:,g}" + (" ✓" if met else " ✗ missed")


def write_section(name: str, text: str, title: str = "# Benchmark results") -> None:
    """Replace (or append) the section `name` of RESULTS.md, leaving the other sections as they are."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    current = RESULTS.read_text() if RESULTS.exists() else f"{title}\n\n"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1]
        current = head + block + tail
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(current)
