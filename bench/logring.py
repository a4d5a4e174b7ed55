"""Measure 8: what the log ring (runtracker.core.logring) adds to one `logging` call when nothing crashes.

One `log.info("member %s synced", member_id)` on a logger at level INFO, with the ring's record factory
installed (as the first `start_run` installs it, 50 records) vs without it, alternating in this one process
(the order flips every round; the figure is the median of the per-round ratios). Two handlers, each writing
nowhere:

- a `NullHandler`: the cheapest complete logging call there is (make the record, find the handlers, hand it
  over), so the ring's share of it is as large as it can get — this is `log_call_ratio_with_ring`;
- a `StreamHandler` with a formatter, to `os.devnull`: what a pipeline's logging really costs (the record is
  formatted and written), shown in the table.

What the ring does per call is one Python function call wrapping the previous factory, one level comparison
and one `deque.append`; formatting happens only if a run crashes.
"""

from __future__ import annotations

import gc
import logging
import os
import time

from benchlib import alternate, median, paired_ratios

from runtracker.core.state import STATE

CALLS = 2_000


def _calls(log: logging.Logger) -> float:
    gc.collect()
    info = log.info
    start = time.thread_time()
    for i in range(CALLS):
        info("member %s synced", i)
    return time.thread_time() - start


def _side(log: logging.Logger, ring: bool) -> float:
    if ring:
        STATE.log_ring.install(50)
    try:
        return _calls(log)
    finally:
        if ring:
            STATE.log_ring.uninstall()


def _pair(handler: logging.Handler, rounds: int) -> dict[str, float]:
    log = logging.getLogger("bench.logring")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    _calls(log)  # warm up
    results = alternate(rounds, {"ring": lambda: _side(log, True), "plain": lambda: _side(log, False)})
    ratio = median(paired_ratios(results["ring"], results["plain"]))
    plain_us = median(results["plain"]) / CALLS * 1e6
    ring_us = median(results["ring"]) / CALLS * 1e6
    return {"ratio": ratio, "plain_us": plain_us, "ring_us": ring_us}


def measure(rounds: int) -> dict[str, dict[str, float]]:
    assert STATE.log_ring.factory is None, "the ring must not be installed before this measure"
    null = _pair(logging.NullHandler(), rounds)
    with open(os.devnull, "w") as devnull:
        stream = logging.StreamHandler(devnull)
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        written = _pair(stream, rounds)
    return {"null": null, "stream": written}


if __name__ == "__main__":
    for name, figures in measure(41).items():
        print(name, {k: round(v, 3) for k, v in figures.items()})
