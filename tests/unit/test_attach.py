"""What a Python child of `runtracker exec` reports into the wrapper's run (runtracker.core.attach): the worse outcome
wins, the latest stats stay, and unreadable summaries count as none."""

from __future__ import annotations

import json

import pytest

from runtracker.core.attach import child_view, merge_view, worse


@pytest.mark.parametrize("a, b, expected", [
    pytest.param("success", "success", "success", id="success-success"),
    pytest.param("success", "partial", "partial", id="success-partial"),
    pytest.param("partial", "success", "partial", id="partial-success"),
    pytest.param("partial", "failure", "failure", id="partial-failure"),
    pytest.param("failure", "success", "failure", id="failure-success"),
    pytest.param("failure", "partial", "failure", id="failure-partial"),
    pytest.param("success", "exploded", "exploded", id="unknown-ranks-as-failure"),
    pytest.param("failure", "exploded", "failure", id="failure-against-unknown-keeps-the-first"),
])
def test_worse_is_the_worse_of_two_outcomes(a, b, expected):
    """success < partial < failure; an outcome it does not know counts as failure."""
    assert worse(a, b) == expected


@pytest.mark.parametrize("summary_json, view", [
    pytest.param(None, None, id="none"),
    pytest.param("", None, id="empty"),
    pytest.param("not json", None, id="not-json"),
    pytest.param("[1, 2]", None, id="json-but-not-an-object"),
    pytest.param('{"rows": 3}', None, id="no-child-view"),
    pytest.param('{"child": "partial"}', None, id="child-view-not-an-object"),
    pytest.param('{"child": {"outcome": "partial", "summary": {"rows": 3}}}',
                 {"outcome": "partial", "summary": {"rows": 3}}, id="a-child-view"),
])
def test_child_view_reads_what_children_reported(summary_json, view):
    """The child's view from a run's summary_json; None when there is none or it is unreadable."""
    assert child_view(summary_json) == view


@pytest.mark.parametrize("summary_json, outcome, stats_json, merged", [
    pytest.param(None, "success", None, {"child": {"outcome": "success"}}, id="first-view-without-stats"),
    pytest.param(None, "partial", '{"rows": 3}', {"child": {"outcome": "partial", "summary": {"rows": 3}}},
                 id="first-view-with-stats"),
    pytest.param('{"child": {"outcome": "failure", "summary": {"rows": 1}}}', "success", '{"rows": 9}',
                 {"child": {"outcome": "failure", "summary": {"rows": 9}}}, id="worse-outcome-stays-latest-stats"),
    pytest.param('{"child": {"outcome": "success"}}', "partial", None, {"child": {"outcome": "partial"}},
                 id="outcome-gets-worse"),
    pytest.param('{"child": {"outcome": "partial", "summary": {"rows": 1}}}', "success", None,
                 {"child": {"outcome": "partial", "summary": {"rows": 1}}}, id="no-new-stats-keeps-the-old"),
    pytest.param('{"child": {"outcome": "exploded"}}', "success", None, {"child": {"outcome": "success"}},
                 id="unknown-earlier-outcome-ignored"),
    pytest.param("not json", "success", '{"rows": 2}', {"child": {"outcome": "success", "summary": {"rows": 2}}},
                 id="unreadable-summary-is-none"),
    pytest.param(None, "success", "[1, 2]", {"child": {"outcome": "success", "summary": {"value": [1, 2]}}},
                 id="stats-that-are-not-an-object-are-wrapped"),
    pytest.param(None, "success", "not json", {"child": {"outcome": "success"}}, id="unreadable-stats-dropped"),
])
def test_merge_view_folds_a_childs_view_into_the_runs_summary(summary_json, outcome, stats_json, merged):
    """Several children (or trackers) on one run: the worst outcome stays, and the latest stats."""
    assert json.loads(merge_view(summary_json, outcome, stats_json)) == merged
