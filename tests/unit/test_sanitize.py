"""Whatever a pipeline hands us becomes a value the database accepts, without raising (runtracker.base.sanitize):
clean bounded text, counts between 0 and MAX_COUNT, names, and JSON."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

import pytest

from runtracker.base import sanitize
from runtracker.base.sanitize import MAX_COUNT

TRUNCATED = "…[truncated]"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Member:
    def __repr__(self) -> str:
        return "<Member KNVB1004>"


def _runtracker_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "runtracker" and r.levelno == logging.WARNING]


def _clean(result: str, limit: int) -> None:
    """What every text the database gets must be: bounded, no NUL, encodable as UTF-8."""
    assert len(result) <= limit
    assert "\x00" not in result
    result.encode("utf-8")


@pytest.mark.parametrize("value, limit, expected", [
    pytest.param("member not found", 50, "member not found", id="clean-text-as-it-is"),
    pytest.param(None, 50, "None", id="none-is-its-name"),
    pytest.param(42, 50, "42", id="a-number"),
    pytest.param(b"caf\xe9 open", 50, "caf\ufffd open", id="bytes-with-invalid-utf8"),
    pytest.param(bytearray(b"\xff"), 50, "\ufffd", id="bytearray"),
    pytest.param(memoryview(b"abc"), 50, "abc", id="memoryview"),
    pytest.param("a\x00b", 50, "a\ufffdb", id="nul-replaced"),
    pytest.param(b"a\x00b", 50, "a\ufffdb", id="nul-in-bytes-replaced"),
    pytest.param("a\ud800b", 50, "a?b", id="lone-surrogate-replaced"),
    pytest.param("x" * 20, 20, "x" * 20, id="exactly-the-limit"),
    pytest.param("é" * 20, 20, "é" * 20, id="exactly-the-limit-non-ascii"),
    pytest.param("x" * 21, 20, "x" * 8 + TRUNCATED, id="one-over-the-limit"),
    pytest.param("é" * 21, 20, "é" * 8 + TRUNCATED, id="one-over-the-limit-non-ascii"),
    pytest.param("x" * 10**6, 2000, "x" * 1988 + TRUNCATED, id="a-megabyte"),
    pytest.param("\x00" * 100, 20, "\ufffd" * 8 + TRUNCATED, id="long-and-dirty"),
    pytest.param(Unprintable(), 50, "<unprintable Unprintable: RuntimeError>", id="str-raises"),
])
def test_text_is_clean_and_at_most_the_limit(value, limit, expected):
    """Any value becomes text without NUL or lone surrogates, cut to the limit with a visible mark."""
    result = sanitize.text(value, limit)
    assert result == expected
    _clean(result, limit)


def test_optional_text_keeps_none():
    """optional_text leaves None as None (a NULL column) and cleans anything else."""
    assert sanitize.optional_text(None, 10) is None
    assert sanitize.optional_text("a\x00", 10) == "a\ufffd"


@pytest.mark.parametrize("value, expected, warning", [
    pytest.param(None, 0, None, id="none-is-0"),
    pytest.param(0, 0, None, id="zero"),
    pytest.param(7, 7, None, id="int"),
    pytest.param(True, 1, None, id="true-is-1"),
    pytest.param(False, 0, None, id="false-is-0"),
    pytest.param(3.7, 3, None, id="float-truncated"),
    pytest.param("12", 12, None, id="numeric-text"),
    pytest.param(" 5 ", 5, None, id="numeric-text-with-spaces"),
    pytest.param("1e3", 1000, None, id="exponent-text"),
    pytest.param(MAX_COUNT, MAX_COUNT, None, id="exactly-max-count"),
    pytest.param(-1, 0, "count -1 is negative; recorded as 0", id="negative-int"),
    pytest.param(-2.5, 0, "is negative", id="negative-float"),
    pytest.param(float("-inf"), 0, "is negative", id="minus-infinity"),
    pytest.param(float("nan"), 0, "count nan is not a number; recorded as 0", id="nan"),
    pytest.param("many", 0, "count 'many' is not a number", id="words"),
    pytest.param("", 0, "is not a number", id="empty-text"),
    pytest.param([3], 0, "is not a number", id="list"),
    pytest.param(object(), 0, "is not a number", id="object"),
    pytest.param(MAX_COUNT + 1, MAX_COUNT, f"is more than {MAX_COUNT}; recorded as {MAX_COUNT}",
                 id="one-over-max-count"),
    pytest.param(10**19, MAX_COUNT, f"count {10**19} is more than {MAX_COUNT}", id="ten-to-the-19"),
    pytest.param(1e19, MAX_COUNT, "is more than", id="huge-float"),
    pytest.param(float("inf"), MAX_COUNT, "is more than", id="infinity"),
    pytest.param("9999999999", MAX_COUNT, "is more than", id="huge-text"),
])
def test_count_is_an_int_between_0_and_max_count(value, expected, warning, caplog):
    """A count is an int from 0 to 2**31 - 1: nonsense is 0 and too much is clamped, each with a warning."""
    assert MAX_COUNT == 2**31 - 1
    caplog.set_level(logging.WARNING, logger="runtracker")
    result = sanitize.count(value)
    assert (type(result), result) == (int, expected)
    warnings = _runtracker_warnings(caplog)
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0], warnings


def test_count_warning_names_what_was_counted(caplog):
    """The warning says which count was bad (created, updated, ...)."""
    caplog.set_level(logging.WARNING, logger="runtracker")
    assert sanitize.count("lots", "created") == 0
    assert _runtracker_warnings(caplog) == ["runtracker: created 'lots' is not a number; recorded as 0"]


@pytest.mark.parametrize("value, default, expected", [
    pytest.param("nikki-sync", "(unnamed)", "nikki-sync", id="a-name"),
    pytest.param(None, "(unnamed)", "(unnamed)", id="none-is-the-default"),
    pytest.param("", "(unnamed)", "(unnamed)", id="empty-is-the-default"),
    pytest.param(None, "step", "step", id="a-default-of-the-callers"),
    pytest.param(0, "(unnamed)", "0", id="zero-is-a-name"),
    pytest.param(b"sync\xff", "(unnamed)", "sync\ufffd", id="bytes"),
    pytest.param("a\x00b", "(unnamed)", "a\ufffdb", id="nul-replaced"),
    pytest.param("x" * sanitize.NAME_LIMIT, "(unnamed)", "x" * sanitize.NAME_LIMIT, id="exactly-the-limit"),
    pytest.param("x" * 300, "(unnamed)", "x" * (sanitize.NAME_LIMIT - len(TRUNCATED)) + TRUNCATED,
                 id="too-long"),
])
def test_name_is_clean_short_text_or_the_default(value, default, expected):
    """A name is clean text of at most NAME_LIMIT characters; None or empty is the default."""
    assert sanitize.name(value, default) == expected


def _dict_cycle() -> dict:
    d: dict = {"name": "nikki"}
    d["self"] = d
    return d


def _list_cycle() -> list:
    items: list = [1]
    items.append(items)
    return items


@pytest.mark.parametrize("value, expected", [
    pytest.param({"created": 3, "tags": ["a", "b"]}, {"created": 3, "tags": ["a", "b"]}, id="plain-dict"),
    pytest.param([1, "a", None, True], [1, "a", None, True], id="list"),
    pytest.param("just text", "just text", id="a-string"),
    pytest.param({"naam": "Jürgen"}, {"naam": "Jürgen"}, id="non-ascii"),
    pytest.param({1: "one"}, {"1": "one"}, id="int-key"),
    pytest.param({(1, 2): "pair"}, {"(1, 2)": "pair"}, id="tuple-key"),
    pytest.param({"ids": {3}}, {"ids": [3]}, id="set"),
    pytest.param({"ids": frozenset([4])}, {"ids": [4]}, id="frozenset"),
    pytest.param({"pair": (1, 2)}, {"pair": [1, 2]}, id="tuple"),
    pytest.param(_dict_cycle(), {"name": "nikki", "self": "<cycle>"}, id="dict-cycle"),
    pytest.param(_list_cycle(), [1, "<cycle>"], id="list-cycle"),
    pytest.param({"a": float("nan"), "b": float("inf"), "c": float("-inf"), "d": 1.5},
                 {"a": "nan", "b": "inf", "c": "-inf", "d": 1.5}, id="non-finite-floats"),
    pytest.param({"at": datetime(2026, 11, 26, 12, 0, tzinfo=UTC), "on": date(2026, 11, 26)},
                 {"at": "2026-11-26T12:00:00+00:00", "on": "2026-11-26"}, id="datetime-and-date"),
    pytest.param({"member": Member()}, {"member": "<Member KNVB1004>"}, id="object-by-its-repr"),
    pytest.param({"error": ValueError("bad row")}, {"error": "ValueError: bad row"}, id="exception"),
    pytest.param({"raw": b"ok\xff"}, {"raw": "ok\ufffd"}, id="bytes"),
    pytest.param({"s": "a\ud800", "ids": {1}}, {"s": "a?", "ids": [1]}, id="lone-surrogate"),
    pytest.param({"s": "a\x00b"}, {"s": "a\x00b"}, id="nul-escaped-not-raw"),
])
def test_to_json_turns_any_stats_into_json(value, expected):
    """Stats become JSON text (UTF-8, no raw NUL) even with sets, cycles, NaN, dates, objects or bytes in them."""
    result = sanitize.to_json(value)
    assert json.loads(result) == expected
    _clean(result, sanitize.JSON_LIMIT * 4)


def test_to_json_of_none_is_none():
    """None stays None (a NULL column), not the text "null"."""
    assert sanitize.to_json(None) is None


def test_to_json_keeps_non_ascii_as_it_is():
    """Non-ASCII text is stored as itself, not as \\u escapes."""
    assert sanitize.to_json({"naam": "Jürgen"}) == '{"naam": "Jürgen"}'


def _nested(depth: int) -> list:
    root: list = []
    inner = root
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return root


@pytest.mark.parametrize("bad", [
    pytest.param(Unprintable(), id="object-whose-str-raises"),
    pytest.param({Unprintable(): 1}, id="key-whose-str-raises"),
    pytest.param(_nested(5000), id="nested-5000-deep"),
    pytest.param(Unrepresentable(), id="object-whose-repr-raises"),
    pytest.param(10**5000, id="int-over-4300-digits"),
])
def test_to_json_never_raises_and_keeps_the_rest(bad):
    """One value JSON cannot hold costs only that value: the result is still JSON with everything else."""
    result = sanitize.to_json({"kept": 1, "bad": bad})
    loaded = json.loads(result)
    assert loaded["kept"] == 1 and "bad" in loaded


def test_to_json_of_a_huge_value_is_valid_json_saying_it_was_truncated():
    """Stats far over the limit become a valid JSON object marked truncated, with a preview of the start."""
    result = sanitize.to_json({"data": "x" * (sanitize.JSON_LIMIT * 5)})
    loaded = json.loads(result)
    assert loaded["truncated"] is True
    assert loaded["preview"].startswith('{"data": "xxx') and len(loaded["preview"]) == sanitize.JSON_LIMIT
    assert len(result) < sanitize.JSON_LIMIT + 100


def test_to_json_just_under_the_limit_is_kept_whole():
    """A document that fits is stored as it is, not wrapped."""
    padding = sanitize.JSON_LIMIT * 4 - len(TRUNCATED) - len('{"data": ""}')
    value = {"data": "x" * padding}
    assert sanitize.to_json(value) == json.dumps(value)
