"""Time as runs record it (runtracker.base.clock): UTC milliseconds written as fixed-width ISO-8601 text, read back
from our own format and from what other tools write, durations never negative."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from runtracker.base.clock import iso, later, ms_between, now_iso, now_ms, to_ms

T = 1795721253598  # 2026-11-26T19:27:33.598Z


@pytest.mark.parametrize("ms, text", [
    pytest.param(0, "1970-01-01T00:00:00.000Z", id="epoch"),
    pytest.param(5, "1970-01-01T00:00:00.005Z", id="milliseconds-zero-padded"),
    pytest.param(999, "1970-01-01T00:00:00.999Z", id="last-millisecond-of-a-second"),
    pytest.param(-1, "1969-12-31T23:59:59.999Z", id="before-the-epoch"),
    pytest.param(T, "2026-11-26T19:27:33.598Z", id="a-moment-in-2026"),
])
def test_iso_writes_fixed_width_utc_milliseconds(ms, text):
    """Milliseconds since the epoch are written as YYYY-MM-DDTHH:MM:SS.mmmZ."""
    assert iso(ms) == text


def test_now_iso_is_the_current_moment_in_our_format():
    """now_iso() is our format, naming a moment between two readings of the clock around it."""
    before = now_ms()
    text = now_iso()
    after = now_ms()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    assert before <= to_ms(text) <= after


@pytest.mark.parametrize("text, ms", [
    pytest.param("2026-11-26T19:27:33.598Z", T, id="our-format"),
    pytest.param("2026-11-26T19:27:33.598+00:00", T, id="utc-offset"),
    pytest.param("2026-11-26T20:27:33.598+01:00", T, id="positive-offset"),
    pytest.param("2026-11-26T14:27:33.598-05:00", T, id="negative-offset"),
    pytest.param("2026-11-26 19:27:33.598+00", T, id="postgres-timestamptz-text"),
    pytest.param("2026-11-26T19:27:33Z", T - 598, id="no-fraction"),
    pytest.param("2026-11-26T19:27:33.598123Z", T, id="microseconds"),
    pytest.param("2026-11-26T19:27:33.598", T, id="naive-is-utc"),
    pytest.param("2026-11-26 19:27:33", T - 598, id="sqlite-datetime-text-is-utc"),
    pytest.param("1970-01-01T00:00:00.000Z", 0, id="epoch"),
    pytest.param("2039-01-31T06:47:04.765+00:00", 2180069224765, id="offset-form-read-to-the-millisecond"),
])
def test_to_ms_reads_our_format_and_what_others_write(text, ms):
    """Our format is read exactly; offsets, no fraction, a space for T and naive times (as UTC) too."""
    assert to_ms(text) == ms


@pytest.mark.parametrize("value", [
    pytest.param("yesterday", id="words"),
    pytest.param("", id="empty"),
    pytest.param("2026-11-26T19:27:33.5x8Z", id="our-width-with-a-letter"),
    pytest.param("2026-13-01T00:00:00.000Z", id="our-width-month-13"),
    pytest.param("2026-11-26T", id="cut-short"),
    pytest.param(None, id="none"),
    pytest.param(T, id="an-int"),
    pytest.param(b"2026-11-26T19:27:33.598Z", id="bytes"),
    pytest.param(datetime(2026, 11, 26), id="a-datetime-object"),
    pytest.param("2026-11-45T10:00:00.000Z", id="our-width-day-45"),
    pytest.param("2026-11-26T25:00:00.000Z", id="our-width-hour-25"),
])
def test_to_ms_of_anything_that_is_not_a_timestamp_is_none(value):
    """Text that names no moment, and anything that is not text, reads as None."""
    assert to_ms(value) is None


@pytest.mark.parametrize("start, end, ms", [
    pytest.param("2026-11-26T19:27:33.598Z", "2026-11-26T19:27:35.000Z", 1402, id="end-after-start"),
    pytest.param("2026-11-26T19:27:33.598Z", "2026-11-26T19:27:33.598Z", 0, id="same-moment"),
    pytest.param("2026-11-26T19:27:35.000Z", "2026-11-26T19:27:33.598Z", 0, id="end-before-start-is-0"),
    pytest.param("2026-11-26T19:27:33.598Z", "2026-11-26T20:27:34.598+01:00", 1000, id="mixed-forms"),
    pytest.param("2026-01-01T00:00:00.000Z", "2026-02-10T00:00:00.000Z", 40 * 86_400_000, id="beyond-32-bits"),
    pytest.param("garbage", "2026-11-26T19:27:33.598Z", 0, id="unreadable-start-is-0"),
    pytest.param("2026-11-26T19:27:33.598Z", "garbage", 0, id="unreadable-end-is-0"),
    pytest.param(None, None, 0, id="both-none-is-0"),
])
def test_ms_between_is_never_negative_and_zero_when_unreadable(start, end, ms):
    """end − start in milliseconds; 0 when the end lies before the start or either is unreadable."""
    assert ms_between(start, end) == ms


@pytest.mark.parametrize("a, b, expected", [
    pytest.param("2026-11-26T19:27:33.598Z", "2026-11-26T19:27:34.000Z", "2026-11-26T19:27:34.000Z",
                 id="b-later"),
    pytest.param("2026-11-26T19:27:33.598Z", "2026-11-26T19:27:33.000Z", "2026-11-26T19:27:33.598Z",
                 id="b-earlier"),
    pytest.param("2026-11-26T19:27:33.598Z", "2026-11-26T20:27:33.598+01:00", "2026-11-26T19:27:33.598Z",
                 id="same-moment-keeps-a"),
    pytest.param("2026-11-26T19:27:33.598Z", "2026-11-26T20:27:34.000+01:00", "2026-11-26T20:27:34.000+01:00",
                 id="b-later-in-another-form-is-returned-as-written"),
    pytest.param("2026-11-26T19:27:33.598Z", "garbage", "2026-11-26T19:27:33.598Z", id="b-unreadable"),
    pytest.param("2026-11-26T19:27:33.598Z", None, "2026-11-26T19:27:33.598Z", id="b-none"),
    pytest.param("2026-11-26T19:27:33.598Z", T + 1000, "2026-11-26T19:27:33.598Z", id="b-not-text"),
])
def test_later_is_the_later_of_two_timestamps_and_a_when_b_is_unreadable(a, b, expected):
    """later(a, b) is b only when b is a readable time after a."""
    assert later(a, b) == expected
