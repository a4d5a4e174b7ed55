"""Durations and sizes as people write them (runtracker.base.units): the forms accepted, the texts of the
ValueErrors for the others, and how messages show them."""

from __future__ import annotations

import pytest

from runtracker.base.units import format_duration, format_size, parse_duration, parse_size

HINT = "(use e.g. 90, 90s, 30m, 2h, 1h30m)"
SIZE_HINT = "(use e.g. 10240, 10KB, 1MB)"


@pytest.mark.parametrize("value, seconds", [
    pytest.param("90", 90, id="bare-number-is-seconds"),
    pytest.param("90s", 90, id="seconds"),
    pytest.param("500ms", 0.5, id="milliseconds"),
    pytest.param("30m", 1800, id="minutes"),
    pytest.param("2h", 7200, id="hours"),
    pytest.param("1d", 86400, id="days"),
    pytest.param("1h30m", 5400, id="hours-and-minutes"),
    pytest.param("1h 30m", 5400, id="spaces-between-parts"),
    pytest.param(" 2H ", 7200, id="any-case-and-surrounding-spaces"),
    pytest.param("1.5h", 5400, id="fractional-part"),
    pytest.param("0.25", 0.25, id="fractional-bare-number"),
    pytest.param("0", 0, id="zero"),
    pytest.param(45, 45, id="int"),
    pytest.param(2.5, 2.5, id="float"),
])
def test_durations_parse_as_people_write_them(value, seconds):
    """90, 90s, 500ms, 30m, 2h, 1h30m, 1d (any case, spaces allowed), and plain numbers, are seconds."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value, message", [
    pytest.param("", f"not a duration: '' {HINT}", id="empty"),
    pytest.param("2 hours", f"not a duration: '2 hours' {HINT}", id="words"),
    pytest.param("h", f"not a duration: 'h' {HINT}", id="unit-without-number"),
    pytest.param("1x", f"not a duration: '1x' {HINT}", id="unknown-unit"),
    pytest.param("2h-1m", f"not a duration: '2h-1m' {HINT}", id="arithmetic"),
    pytest.param("2h30", f"not a duration: '2h30' {HINT}", id="trailing-number-without-unit"),
    pytest.param("-5", "a duration cannot be negative: '-5'", id="negative-text"),
    pytest.param(-1, "a duration cannot be negative: -1", id="negative-number"),
    pytest.param(True, "not a duration: True", id="bool"),
    pytest.param(None, "not a duration: None", id="none"),
    pytest.param([90], "not a duration: [90]", id="list"),
])
def test_bad_durations_are_value_errors_that_show_the_accepted_forms(value, message):
    """Anything else is a ValueError quoting the value (and, for text, the forms that work)."""
    with pytest.raises(ValueError) as raised:
        parse_duration(value)
    assert str(raised.value) == message


def test_a_duration_that_is_not_a_number_is_rejected():
    """NaN (as a float or as text) is no duration."""
    for value in (float("nan"), "nan"):
        with pytest.raises(ValueError, match="nan"):
            parse_duration(value)


@pytest.mark.parametrize("value, size", [
    pytest.param("512", 512, id="bare-number-is-bytes"),
    pytest.param("512b", 512, id="bytes-unit"),
    pytest.param("10KB", 10240, id="KB-is-1024"),
    pytest.param("10K", 10240, id="K"),
    pytest.param("10kb", 10240, id="lower-case"),
    pytest.param("10KiB", 10240, id="KiB"),
    pytest.param("1MB", 1048576, id="MB-is-1024-squared"),
    pytest.param("1M", 1048576, id="M"),
    pytest.param("1MiB", 1048576, id="MiB"),
    pytest.param(" 64 KB ", 65536, id="spaces"),
    pytest.param("1.5KB", 1536, id="fractional"),
    pytest.param("0", 0, id="zero"),
    pytest.param(2048, 2048, id="int"),
])
def test_sizes_parse_with_binary_multiples(value, size):
    """10KB = 10 × 1024 bytes, 1MB = 1024²; a bare number is bytes."""
    assert parse_size(value) == size


@pytest.mark.parametrize("value, message", [
    pytest.param("lots", f"not a size: 'lots' {SIZE_HINT}", id="words"),
    pytest.param("", f"not a size: '' {SIZE_HINT}", id="empty"),
    pytest.param("1GB", f"not a size: '1GB' {SIZE_HINT}", id="gigabytes-are-not-offered"),
    pytest.param("-1", f"not a size: '-1' {SIZE_HINT}", id="negative-text"),
    pytest.param(-1, "a size cannot be negative: -1", id="negative-int"),
    pytest.param(1.5, "not a size: 1.5", id="float"),
    pytest.param(True, "not a size: True", id="bool"),
    pytest.param(None, "not a size: None", id="none"),
])
def test_bad_sizes_are_value_errors_that_show_the_accepted_forms(value, message):
    """Anything else is a ValueError quoting the value (and, for text, the forms that work)."""
    with pytest.raises(ValueError) as raised:
        parse_size(value)
    assert str(raised.value) == message


@pytest.mark.parametrize("seconds, text", [
    pytest.param(0, "0s", id="zero"),
    pytest.param(0.5, "0.5s", id="fraction-of-a-second"),
    pytest.param(59.5, "59.5s", id="fraction-under-a-minute"),
    pytest.param(10, "10s", id="seconds"),
    pytest.param(90, "1m30s", id="minute-and-a-half"),
    pytest.param(60.4, "1m", id="over-a-minute-rounds-to-whole-seconds"),
    pytest.param(7200, "2h", id="hours"),
    pytest.param(5400, "1h30m", id="hours-and-minutes"),
    pytest.param(86400, "1d", id="a-day"),
    pytest.param(90061, "1d1h1m1s", id="every-unit"),
])
def test_durations_show_the_way_they_are_written(seconds, text):
    """Messages show durations as a person writes them: 2h, 1h30m, 1m30s, 0.5s."""
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [pytest.param(s, id=f"{s}s") for s in (0, 1, 59, 60, 90, 3600, 5400, 90061)])
def test_a_shown_duration_reads_back_as_the_same_duration(seconds):
    """parse_duration(format_duration(s)) == s for whole seconds."""
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("size, text", [
    pytest.param(0, "0B", id="zero"),
    pytest.param(512, "512B", id="bytes"),
    pytest.param(1024, "1KB", id="one-KB"),
    pytest.param(10240, "10KB", id="KB"),
    pytest.param(1536, "1536B", id="not-a-whole-KB"),
    pytest.param(1048576, "1MB", id="MB"),
    pytest.param(3 * 1048576, "3MB", id="whole-MB"),
    pytest.param(1048576 + 1024, "1025KB", id="not-a-whole-MB"),
])
def test_sizes_show_in_the_largest_unit_that_divides_them(size, text):
    """Sizes show as MB, else KB, else bytes: whatever states them exactly."""
    assert format_size(size) == text
    assert parse_size(text) == size
