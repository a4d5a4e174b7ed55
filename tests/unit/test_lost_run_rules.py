"""A lost run's end and a late heartbeat, as rules: `lifecycle.lost_run_end` (a death seen as it happened is the
end; otherwise the last sign of life, said to be an estimate and from what), `status.heartbeat_late_s`, and what
the run page and the alert say about them."""

from __future__ import annotations

import json

import pytest

from runtracker.alerts.messages import run_alert
from runtracker.base.clock import iso, to_ms
from runtracker.base.status import heartbeat_late_after_s, heartbeat_late_s
from runtracker.core.ending import (
    END_ESTIMATED,
    END_OBSERVED,
    FROM_ACTIVITY,
    FROM_HEARTBEAT,
    FROM_SEEN_ALIVE,
    FROM_START,
)
from runtracker.core.lifecycle import OBSERVED_WITHIN_MS, lost_run_end
from runtracker.settings.pipelines import Pipeline
from runtracker.web import present

START = "2026-01-01T00:00:00.000Z"
START_MS = to_ms(START) or 0
BEAT = "2026-01-01T00:00:00.010Z"  # its last heartbeat, 10 ms in
STEP = "2026-01-01T00:00:00.059Z"  # its last write: a step started 59 ms in


def _row(heartbeat_at: str | None = BEAT) -> dict[str, object]:
    return {"started_at": START, "heartbeat_at": heartbeat_at}


def test_a_death_seen_as_it_happened_is_the_end():
    """Seen dead 2 s in, alive 250 ms before: ends at 2 s, `observed`, with when it was last known alive."""
    end, how = lost_run_end(_row(), STEP, (START_MS + 1750, START_MS + 2000))
    assert end == iso(START_MS + 2000)
    assert how == {"end": END_OBSERVED, "alive_at": iso(START_MS + 1750)}


def test_a_death_seen_long_after_it_was_last_known_alive_is_estimated_from_that_moment():
    """The monitor was busy for 5 s: the death lies in between; the end is the last moment known alive."""
    end, how = lost_run_end(_row(), STEP, (START_MS + 1000, START_MS + 1000 + OBSERVED_WITHIN_MS + 4000))
    assert end == iso(START_MS + 1000)
    assert how == {"end": END_ESTIMATED, "estimated_from": FROM_SEEN_ALIVE,
                   "dead_by": iso(START_MS + 1000 + OBSERVED_WITHIN_MS + 4000)}


def test_a_seen_death_never_ends_a_run_before_its_last_write():
    """A clock stepped back between the owner's last write and the monitor's look: the write stays inside."""
    end, how = lost_run_end(_row(), STEP, (START_MS + 20, START_MS + 30))
    assert end == STEP and how["end"] == END_OBSERVED


@pytest.mark.parametrize(("heartbeat_at", "activity", "expected", "source"), [
    (BEAT, STEP, STEP, FROM_ACTIVITY),
    ("2026-01-01T00:00:10.000Z", STEP, "2026-01-01T00:00:10.000Z", FROM_HEARTBEAT),
    (START, None, START, FROM_START),  # the heartbeat an owner writes with its start is no later sign
    (None, None, START, FROM_START),
])
def test_an_unseen_death_is_estimated_from_the_last_sign_of_life(heartbeat_at, activity, expected, source):
    """Nobody saw it die: the latest of heartbeat and write, named."""
    assert lost_run_end(_row(heartbeat_at), activity, None) == (expected, {"end": END_ESTIMATED,
                                                                           "estimated_from": source})


def test_a_heartbeat_is_late_after_three_intervals_or_the_timeout_if_sooner():
    """10 s beats: late after 30 s; 30 s beats with a 60 s timeout: late at the timeout, never at the 2nd beat."""
    now = START_MS + 100_000
    row = {"outcome": "running", "heartbeat_at": iso(now - 30_000)}
    assert heartbeat_late_after_s(10, 60) == 30 and heartbeat_late_after_s(30, 60) == 60
    assert heartbeat_late_s(row, now, 10, 60) is None  # exactly 30 s: not yet
    assert heartbeat_late_s({**row, "heartbeat_at": iso(now - 30_001)}, now, 10, 60) == pytest.approx(30.001)
    assert heartbeat_late_s({**row, "heartbeat_at": iso(now - 59_000)}, now, 30, 60) is None
    assert heartbeat_late_s({**row, "outcome": "failure", "heartbeat_at": iso(0)}, now, 10, 60) is None
    assert heartbeat_late_s({"outcome": "running", "heartbeat_at": None}, now, 10, 60) is None


def _lost(how: dict[str, object], duration_ms: int = 59) -> dict[str, object]:
    summary = {"crash": True, "kind": "lost", "reason": "pid_gone", "detected_by": "runtracker serve",
               "detected_at": "2026-01-01T00:05:00.000Z", **how}
    return {"id": 7, "pipeline": "nikki", "outcome": "failure", "started_at": START,
            "finished_at": iso(START_MS + duration_ms), "duration_ms": duration_ms, "reap_reason": "pid_gone",
            "ended_by": "reaper", "reaped_at": "2026-01-01T00:05:00.000Z", "summary_json": json.dumps(summary),
            "exit_code": None}


def test_the_alert_says_at_least_and_what_an_estimated_end_came_from():
    """'after at least 0.059s (the end is estimated from the last step or error it wrote …)'."""
    alert = run_alert("crashed", "lost", _lost({"end": END_ESTIMATED, "estimated_from": FROM_ACTIVITY}),
                      Pipeline("nikki"), [], None)
    assert ("Started 2026-01-01 00:00 UTC, ended 2026-01-01 00:00 UTC after at least 0.059s (the end is estimated "
            "from the last step or error it wrote: nobody saw it die; found dead 2026-01-01 00:05 UTC).") in alert.body


def test_the_alert_of_a_death_seen_says_how_long_it_ran_plainly():
    """Observed: 'after 2.003s.', nothing about an estimate; a run reaped before summaries said `end` is one."""
    seen = run_alert("crashed", "lost", _lost({"end": END_OBSERVED}, 2003), Pipeline("nikki"), [], None)
    assert "after 2.003s." in seen.body and "estimated" not in seen.body
    older = run_alert("crashed", "lost", _lost({}), Pipeline("nikki"), [], None)
    assert "after at least 0.059s (the end is estimated from its last sign of life" in older.body


def test_the_run_page_says_how_a_lost_run_s_end_is_known():
    """Estimated: from what, at when, and when it was found dead; observed: by whom, as it happened."""
    estimated = present.lost_end(_lost({"end": END_ESTIMATED, "estimated_from": FROM_HEARTBEAT}))
    assert estimated == {"estimated": True, "text": f"estimated from the last heartbeat at {iso(START_MS + 59)}: "
                         "nobody saw it die; runtracker serve found it dead at 2026-01-01T00:05:00.000Z"}
    observed = present.lost_end(_lost({"end": END_OBSERVED, "alive_at": BEAT}))
    assert observed == {"estimated": False, "text": "when its process died, seen by runtracker serve as it happened "
                        f"(alive at {BEAT})"}
    assert present.lost_end({**_lost({}), "ended_by": "owner"}) is None
