"""A pipeline's status as one pure function (runtracker.base.status): never ran, ran on time, overdue, running too
long, grace, and schedules in a time zone across the DST changes — the rule the overview, /metrics, the API and the
monitor's alerts all call."""

from __future__ import annotations

import pytest

from runtracker.base.clock import iso, to_ms
from runtracker.base.schedule import NextTimes, Schedule
from runtracker.base.status import (
    FAILING,
    LATE_HEARTBEAT,
    NEVER_RAN,
    OK,
    OVERDUE,
    RUNNING_STATE,
    SILENCED,
    STATES,
    TOO_LONG,
    PipelineFacts,
    overdue_since,
    pipeline_status,
    too_long,
)
from runtracker.settings.pipelines import Watch

AMSTERDAM = "Europe/Amsterdam"
DAILY_7 = Watch(schedule=Schedule(("0 7 * * *",), AMSTERDAM), timezone=AMSTERDAM, grace_s=4 * 3600,
                max_runtime_s=3600)
NIGHTLY_0230 = Watch(schedule=Schedule(("30 2 * * *",), AMSTERDAM), timezone=AMSTERDAM)  # grace 4 h (the default)
NO_SCHEDULE = Watch(max_runtime_s=3600)
NOTHING = Watch()


def _ms(text: str | None) -> int | None:
    return to_ms(text) if text is not None else None


def _iso(ms: int | None) -> str | None:
    return iso(ms) if ms is not None else None


@pytest.mark.parametrize("watch, last_start, watched_since, now, overdue, next_due", [
    # Daily 07:00 Amsterdam (05:00 UTC in summer), 4 h grace.
    pytest.param(DAILY_7, None, None, "2026-07-02T12:00:00.000Z", None, "2026-07-03T05:00:00.000Z",
                 id="never-ran-never-watched: counts from now, not overdue"),
    pytest.param(DAILY_7, None, "2026-06-30T12:00:00.000Z", "2026-07-02T12:00:00.000Z", "2026-07-01T05:00:00.000Z",
                 "2026-07-03T05:00:00.000Z", id="never-ran-watched-two-days: overdue from the first time after"),
    pytest.param(DAILY_7, None, "2026-07-02T06:00:00.000Z", "2026-07-02T12:00:00.000Z", None,
                 "2026-07-03T05:00:00.000Z", id="never-ran-watched-since-after-today's-time: not yet"),
    pytest.param(DAILY_7, "2026-07-02T05:00:03.000Z", None, "2026-07-02T20:00:00.000Z", None,
                 "2026-07-03T05:00:00.000Z", id="ran-on-time"),
    pytest.param(DAILY_7, "2026-07-02T04:59:30.000Z", None, "2026-07-02T20:00:00.000Z", None,
                 "2026-07-03T05:00:00.000Z", id="ran-30-s-early: counts for 07:00"),
    pytest.param(DAILY_7, "2026-07-02T04:58:59.000Z", None, "2026-07-02T09:00:00.000Z", "2026-07-02T05:00:00.000Z",
                 "2026-07-03T05:00:00.000Z", id="ran-over-a-minute-early: does not count"),
    pytest.param(DAILY_7, "2026-07-01T05:00:03.000Z", None, "2026-07-02T08:59:59.999Z", None,
                 "2026-07-03T05:00:00.000Z", id="missed-today-within-grace"),
    pytest.param(DAILY_7, "2026-07-01T05:00:03.000Z", None, "2026-07-02T09:00:00.000Z", "2026-07-02T05:00:00.000Z",
                 "2026-07-03T05:00:00.000Z", id="missed-today-grace-just-passed"),
    pytest.param(DAILY_7, "2026-06-28T05:00:03.000Z", None, "2026-07-02T12:00:00.000Z", "2026-06-29T05:00:00.000Z",
                 "2026-07-03T05:00:00.000Z", id="overdue-since-the-first-time-missed-not-the-latest"),
    pytest.param(DAILY_7, "2026-06-28T05:00:03.000Z", "2026-07-02T06:00:00.000Z", "2026-07-02T12:00:00.000Z",
                 "2026-06-29T05:00:00.000Z", "2026-07-03T05:00:00.000Z",
                 id="a-run-counts-before-when-it-was-watched"),
    pytest.param(Watch(schedule=Schedule(("0 7 * * *",), AMSTERDAM), grace_s=0), "2026-07-01T05:00:03.000Z", None,
                 "2026-07-02T05:00:00.000Z", "2026-07-02T05:00:00.000Z", "2026-07-03T05:00:00.000Z",
                 id="no-grace: overdue at the scheduled time"),
    # Spring forward, 2026-03-29: 02:30 does not exist; due at the jump, 03:00 CEST (01:00 UTC).
    pytest.param(NIGHTLY_0230, "2026-03-28T01:30:05.000Z", None, "2026-03-29T04:59:59.000Z", None,
                 "2026-03-30T00:30:00.000Z", id="spring-forward-within-grace"),
    pytest.param(NIGHTLY_0230, "2026-03-28T01:30:05.000Z", None, "2026-03-29T05:00:00.000Z",
                 "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z", id="spring-forward-overdue-since-the-jump"),
    pytest.param(NIGHTLY_0230, "2026-03-29T01:00:04.000Z", None, "2026-03-29T20:00:00.000Z", None,
                 "2026-03-30T00:30:00.000Z", id="spring-forward-ran-at-the-jump"),
    # Fall back, 2026-10-25: 02:30 occurs twice; due once, at the first (00:30 UTC).
    pytest.param(NIGHTLY_0230, "2026-10-25T00:30:02.000Z", None, "2026-10-25T05:31:00.000Z", None,
                 "2026-10-26T01:30:00.000Z", id="fall-back-ran-once-not-overdue-for-the-repeated-hour"),
    pytest.param(NIGHTLY_0230, "2026-10-24T00:30:02.000Z", None, "2026-10-25T04:30:00.000Z",
                 "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z", id="fall-back-overdue-since-the-first"),
    pytest.param(NO_SCHEDULE, "2026-06-01T00:00:00.000Z", None, "2026-07-02T12:00:00.000Z", None, None,
                 id="no-schedule: never overdue, no next"),
])
def test_overdue_since_and_next_due_follow_the_schedule_its_grace_and_the_latest_start(
        watch, last_start, watched_since, now, overdue, next_due):
    """Each case: the pipeline's facts and `now` in, since when it is overdue and when it is due next out."""
    status = pipeline_status("nikki", watch, PipelineFacts(_ms(last_start), (), _ms(watched_since)), to_ms(now))
    assert (_iso(status.overdue_since_ms), _iso(status.next_due_ms)) == (overdue, next_due)
    assert status.last_started_ms == _ms(last_start)


@pytest.mark.parametrize("watch, started, expected", [
    pytest.param(DAILY_7, "2026-07-02T10:00:00.000Z", [1], id="two-hours-past-one-hour-max"),
    pytest.param(DAILY_7, "2026-07-02T11:00:00.000Z", [], id="exactly-the-maximum: not yet"),
    pytest.param(DAILY_7, "2026-07-02T10:59:59.999Z", [1], id="a-millisecond-past-the-maximum"),
    pytest.param(NOTHING, "2026-06-02T10:00:00.000Z", [], id="no-maximum: never too long"),
    pytest.param(DAILY_7, "not a time", [], id="an-unreadable-start: not judged"),
])
def test_a_running_run_is_too_long_strictly_past_the_maximum_runtime(watch, started, expected):
    """A run of the pipeline still `running` at 12:00 UTC, against its max_runtime."""
    running = ({"id": 1, "started_at": started},)
    status = pipeline_status("nikki", watch, PipelineFacts(to_ms(started), running), to_ms("2026-07-02T12:00:00.000Z"))
    assert status.too_long == expected
    assert status.oldest_running == running[0]


def test_a_running_run_that_started_on_time_keeps_the_pipeline_from_being_overdue():
    """The latest start counts whatever the run's outcome: a run still going since 07:00 covers 07:00."""
    started = "2026-07-02T05:00:01.000Z"
    running = ({"id": 7, "started_at": started},)
    status = pipeline_status("nikki", DAILY_7, PipelineFacts(to_ms(started), running),
                             to_ms("2026-07-02T12:00:00.000Z"))
    assert status.overdue_since_ms is None and status.too_long == [7] and status.running == running


def test_watched_says_whether_the_config_expects_anything_of_the_pipeline():
    """A schedule or a maximum runtime makes a pipeline watched (what /metrics reports on); neither does not."""
    facts, now = PipelineFacts(None), to_ms("2026-07-02T12:00:00.000Z")
    assert [pipeline_status("p", w, facts, now).watched for w in (DAILY_7, NO_SCHEDULE, NOTHING)] == [True, True, False]


def test_overdue_since_the_first_time_missed_once_the_grace_has_passed():
    """Daily 03:15 UTC with 4 h grace: overdue from the first scheduled time after the last start, plus grace."""
    schedule = Schedule(("15 3 * * *",), "UTC")
    assert overdue_since(schedule, 4 * 3600, to_ms("2026-07-01T03:15:20.000Z"), to_ms("2026-07-02T07:14:59.000Z")) \
        is None
    assert iso(overdue_since(schedule, 4 * 3600, to_ms("2026-07-01T03:15:20.000Z"),
                             to_ms("2026-07-02T07:15:00.000Z"))) == "2026-07-02T03:15:00.000Z"


def test_too_long_only_past_the_maximum_runtime():
    """A run is too long strictly after its maximum runtime; no maximum, or no start, means never."""
    assert not too_long(0, 3600, 3_600_000) and too_long(0, 3600, 3_600_001) and not too_long(0, None, 10**12)
    assert not too_long(None, 1, 10**12)


def test_the_memo_of_next_times_answers_as_the_schedule_does_across_a_dst_change():
    """Every 7 minutes across both 2026 DST days, the memo's answer is Schedule.next's."""
    memo = NextTimes()
    for expression in ("30 2 * * *", "*/15 * * * *", "0 7 * * 1-5"):
        schedule = Schedule((expression,), AMSTERDAM)
        for day in ("2026-03-28T22:00:00.000Z", "2026-10-24T22:00:00.000Z"):
            start = to_ms(day)
            for at in range(start, start + 8 * 3600_000, 7 * 60_000):
                assert memo.after(schedule, at) == schedule.next(at), (expression, iso(at))


class _Counted:
    """A schedule that counts how often its next time is computed."""

    def __init__(self) -> None:
        self.calls = 0

    def next(self, after_ms: int) -> int:
        self.calls += 1
        return (after_ms // 3600_000 + 1) * 3600_000  # hourly


def test_the_memo_computes_a_next_time_once_for_every_instant_before_it():
    """A start and later `now`s before the same scheduled time cost one computation; past it, one more."""
    memo, schedule = NextTimes(), _Counted()
    answers = [memo.after(schedule, at) for at in (3600_000 + 5, 3600_000 + 60_000, 7200_000 - 1)]
    assert answers == [7200_000] * 3 and schedule.calls == 1
    assert memo.after(schedule, 7200_000) == 10800_000 and schedule.calls == 2
    assert memo.after(schedule, 3600_000 + 7) == 7200_000 and schedule.calls == 2


# -- the state: one word per pipeline, the first that applies ----------------------------------------------------
NOON = "2026-07-02T12:00:00.000Z"
HEARTBEAT = (10.0, 60.0)  # interval, timeout: late after 30 s (3 beats)


def _run(started: str, heartbeat: str | None = "2026-07-02T11:59:55.000Z") -> dict[str, object]:
    return {"id": 1, "started_at": started, "heartbeat_at": heartbeat}


@pytest.mark.parametrize("watch, last_start, running, last_outcome, state", [
    pytest.param(NOTHING, None, (), None, NEVER_RAN, id="never-ran"),
    pytest.param(NOTHING, "2026-07-02T11:00:00.000Z", (), "success", OK, id="success: ok"),
    pytest.param(NOTHING, "2026-07-02T11:00:00.000Z", (), "partial", OK, id="partial: ok (the card says why)"),
    pytest.param(NOTHING, "2026-07-02T11:00:00.000Z", (), "failure", FAILING, id="failure: failing"),
    pytest.param(DAILY_7, "2026-06-30T05:00:00.000Z", (), "success", OVERDUE, id="missed-its-time: overdue"),
    pytest.param(DAILY_7, "2026-06-30T05:00:00.000Z", (), "failure", FAILING, id="failing-and-overdue: failing"),
    pytest.param(DAILY_7, None, (), None, NEVER_RAN, id="never-ran-never-watched: never ran, not overdue"),
    pytest.param(NOTHING, "2026-07-02T11:59:00.000Z", (_run("2026-07-02T11:59:00.000Z"),), "failure", RUNNING_STATE,
                 id="running-after-a-failure: running"),
    pytest.param(NOTHING, "2026-07-02T11:59:00.000Z", (_run("2026-07-02T11:59:00.000Z"),), None, RUNNING_STATE,
                 id="its-first-run: running"),
    pytest.param(DAILY_7, "2026-07-02T10:00:00.000Z", (_run("2026-07-02T10:00:00.000Z"),), "success", TOO_LONG,
                 id="past-max-runtime: too long"),
    pytest.param(DAILY_7, "2026-07-02T10:00:00.000Z", (_run("2026-07-02T10:00:00.000Z", "2026-07-02T11:59:00.000Z"),),
                 "success", LATE_HEARTBEAT, id="too-long-and-heartbeat-late: late heartbeat"),
    pytest.param(NOTHING, "2026-07-02T11:50:00.000Z", (_run("2026-07-02T11:50:00.000Z", "2026-07-02T11:59:29.000Z"),),
                 "success", LATE_HEARTBEAT, id="heartbeat-31-s-old: late"),
    pytest.param(NOTHING, "2026-07-02T11:50:00.000Z", (_run("2026-07-02T11:50:00.000Z", "2026-07-02T11:59:30.000Z"),),
                 "success", RUNNING_STATE, id="heartbeat-exactly-30-s-old: not yet"),
    pytest.param(NOTHING, "2026-07-02T08:00:00.000Z", (_run("2026-07-02T08:00:00.000Z", None),), "success",
                 RUNNING_STATE, id="a-run-that-never-beat: never late"),
])
def test_each_pipeline_has_one_state_the_first_that_applies(watch, last_start, running, last_outcome, state):
    """Late heartbeat, too long, running, failing, overdue, ok, never ran: in that order of precedence."""
    facts = PipelineFacts(_ms(last_start), running, None, last_outcome)
    status = pipeline_status("nikki", watch, facts, to_ms(NOON), HEARTBEAT)
    assert status.state == state
    assert status.late_heartbeat == ([1] if state == LATE_HEARTBEAT else [])


def test_without_a_heartbeat_timeout_no_heartbeat_is_judged_late():
    """The alerts' watcher passes none: an old heartbeat leaves the pipeline running."""
    started = "2026-07-02T08:00:00.000Z"
    facts = PipelineFacts(to_ms(started), (_run(started, started),))
    assert pipeline_status("nikki", NOTHING, facts, to_ms(NOON)).state == RUNNING_STATE


def test_the_states_are_listed_most_urgent_first_and_silenced_is_reserved():
    """STATES is the overview's order and its summary's; `silenced` is there, and nothing sets it yet."""
    assert STATES == (FAILING, OVERDUE, TOO_LONG, LATE_HEARTBEAT, RUNNING_STATE, OK, NEVER_RAN, SILENCED)
