"""Schedules in a time zone, as cron runs them across the DST changes (runtracker.base.schedule): a time that does not
exist is due when the clock jumps past it, a time that occurs twice is due once, at the first."""

from __future__ import annotations

import pytest

from runtracker.base.clock import iso, to_ms
from runtracker.base.schedule import Schedule

AMSTERDAM = "Europe/Amsterdam"


@pytest.mark.parametrize("expression, now, previous, following", [
    # Spring forward, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist that day.
    pytest.param("30 2 * * *", "2026-03-29T00:59:59.000Z", "2026-03-28T01:30:00.000Z", "2026-03-29T01:00:00.000Z",
                 id="spring-before-the-jump: due at the jump"),
    pytest.param("30 2 * * *", "2026-03-29T01:00:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z",
                 id="spring-at-the-jump"),
    pytest.param("30 2 * * *", "2026-03-29T05:00:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z",
                 id="spring-later-that-day: next is 02:30 CEST"),
    pytest.param("30 1 * * *", "2026-03-29T05:00:00.000Z", "2026-03-29T00:30:00.000Z", "2026-03-29T23:30:00.000Z",
                 id="spring-01:30-exists: CET that day, CEST the next"),
    pytest.param("30 3 * * *", "2026-03-29T01:00:00.000Z", "2026-03-28T02:30:00.000Z", "2026-03-29T01:30:00.000Z",
                 id="spring-03:30-exists-in-CEST"),
    # Fall back, 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 occurs twice.
    pytest.param("30 2 * * *", "2026-10-25T00:29:00.000Z", "2026-10-24T00:30:00.000Z", "2026-10-25T00:30:00.000Z",
                 id="fall-before-the-first-02:30"),
    pytest.param("30 2 * * *", "2026-10-25T00:45:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z",
                 id="fall-between-the-two-02:30s: once only"),
    pytest.param("30 2 * * *", "2026-10-25T01:15:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z",
                 id="fall-second-02:15: the first 02:30 was today's"),
    pytest.param("30 2 * * *", "2026-10-25T01:45:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z",
                 id="fall-after-the-second-02:30: not due again"),
    pytest.param("0 * * * *", "2026-10-25T01:30:00.000Z", "2026-10-25T00:00:00.000Z", "2026-10-25T02:00:00.000Z",
                 id="fall-hourly: the repeated hour's 02:00 is the first"),
    pytest.param("15 3 * * *", "2026-07-01T12:00:00.000Z", "2026-07-01T01:15:00.000Z", "2026-07-02T01:15:00.000Z",
                 id="summer-plain-day"),
    pytest.param("15 3 * * 1-5", "2026-07-04T12:00:00.000Z", "2026-07-03T01:15:00.000Z", "2026-07-06T01:15:00.000Z",
                 id="weekdays-over-a-weekend"),
])
def test_previous_and_next_scheduled_times_in_amsterdam_follow_cron_across_dst(expression, now, previous, following):
    """Each case: the latest scheduled instant at or before `now`, and the first after it."""
    schedule = Schedule((expression,), AMSTERDAM)
    assert iso(schedule.previous(to_ms(now))) == previous
    assert iso(schedule.next(to_ms(now))) == following


def test_several_expressions_give_the_nearest_times():
    """Two expressions: previous is the later of their previous times, next the earlier of their next."""
    schedule = Schedule(("15 3 * * *", "15 15 * * *"), "UTC")
    now = to_ms("2026-07-01T12:00:00.000Z")
    assert (iso(schedule.previous(now)), iso(schedule.next(now))) == ("2026-07-01T03:15:00.000Z",
                                                                      "2026-07-01T15:15:00.000Z")
