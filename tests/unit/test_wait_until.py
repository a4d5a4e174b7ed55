"""The suite's one wait (helpers.wait_until): it returns what it waited for, and giving up is a loud failure."""

from __future__ import annotations

import pytest

from helpers import wait_until


def test_wait_until_polls_until_the_predicate_is_truthy_and_returns_its_value():
    """Falsy values (0, [], None) mean "not yet"; the first truthy one is returned."""
    answers = iter([0, [], None, ["run 7"]])
    calls = []

    def predicate():
        calls.append(1)
        return next(answers)

    assert wait_until(predicate, "run 7", interval=0) == ["run 7"]
    assert len(calls) == 4


def test_wait_until_gives_up_with_an_assertion_naming_what_the_timeout_and_the_last_value():
    """Past the timeout it raises AssertionError saying what it waited for, how long, and what it last saw."""
    with pytest.raises(AssertionError) as raised:
        wait_until(lambda: [], "the monitor to reap run 7", timeout=0)
    assert str(raised.value) == "gave up waiting for the monitor to reap run 7 after 0 s; the last value was []"


def test_wait_until_lets_an_error_of_the_predicate_through():
    """A predicate that raises is a failure of the test, not a reason to keep waiting."""
    def predicate():
        raise LookupError("no such run")

    with pytest.raises(LookupError, match="no such run"):
        wait_until(predicate, "a run", interval=0)
