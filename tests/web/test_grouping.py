"""The normaliser that decides which errors are alike, grouping a window of rows, and the grouped page."""

from __future__ import annotations

import pytest
from webdata import add_run

from runtracker.web.grouping import group, normalise


@pytest.mark.parametrize(("message", "pattern"), [
    ("member KNVB1004 not found", "member KNVB# not found"),
    ("member KNVB1004821 not found", "member KNVB# not found"),  # not KNV<hex>: "B1004821" is hex digits too
    ("ticket_5f3a9c1e22 failed", "ticket_<hex> failed"),
    ("timeout after 30 s (attempt 3)", "timeout after # s (attempt #)"),
    ("took 1.5 s for 1,200 rows", "took # s for # rows"),
    ("invalid IBAN 'NL12BANK0034'", "invalid IBAN '…'"),
    ('unexpected field "x12" in the response', "unexpected field '…' in the response"),
    ("object 5f3a9c1e22 failed", "object <hex> failed"),
    ("pointer 0x7f3a at exit", "pointer <hex> at exit"),
    ("request 123e4567-e89b-12d3-a456-426614174000 failed", "request <uuid> failed"),
    ("deadbeefcafe is a word here", "deadbeefcafe is a word here"),
    ("no numbers at all", "no numbers at all"),
    ("", ""),
])
def test_numbers_ids_and_quoted_values_are_replaced(message, pattern):
    """What varies between occurrences becomes a placeholder; the rest of the message stays."""
    assert normalise(message) == pattern


def test_alike_errors_are_one_group_with_counts_runs_members_and_when():
    """Same step and pattern: one group, the largest first, first and last seen, distinct runs and members."""
    rows = [  # newest first, as the window is read
        {"step_name": "sync", "error_message": "member KNVB3 not found", "run_id": 2, "member_identifier": "KNVB3",
         "created_at": "2026-11-30T03:00:00.000Z", "pipeline": "nikki"},
        {"step_name": "sync", "error_message": "member KNVB2 not found", "run_id": 1, "member_identifier": "KNVB2",
         "created_at": "2026-11-29T03:00:00.000Z", "pipeline": "nikki"},
        {"step_name": "sync", "error_message": "member KNVB2 not found", "run_id": 1, "member_identifier": "KNVB2",
         "created_at": "2026-11-29T02:00:00.000Z", "pipeline": "nikki"},
        {"step_name": "download", "error_message": "member KNVB9 not found", "run_id": 1,
         "member_identifier": None, "created_at": "2026-11-29T01:00:00.000Z", "pipeline": "nikki"},
    ]
    first, second = group(rows)
    assert (first.step_name, first.pattern, first.count) == ("sync", "member KNVB# not found", 3)
    assert first.example == "member KNVB3 not found"
    assert (first.first_seen, first.last_seen) == ("2026-11-29T02:00:00.000Z", "2026-11-30T03:00:00.000Z")
    assert list(first.runs) == [2, 1] and list(first.members) == ["KNVB3", "KNVB2"]
    assert (second.step_name, second.count, list(second.members)) == ("download", 1, [])


def test_the_grouped_view_shows_seven_digit_member_numbers_as_numbers(app, client):
    """The grouped page: members KNVB1004821 and KNVB3348120 not found are one group, `member KNVB# not found`."""
    add_run(app.state.web.store, "nikki", 1, errors=[("sync", "KNVB1004821", "member KNVB1004821 not found"),
                                                     ("sync", "KNVB3348120", "member KNVB3348120 not found")])
    html = client.get("/errors?view=groups").text
    assert '<code class="pattern">member KNVB# not found</code>' in html
    assert 'data-count="2"' in html and "KNV&lt;hex&gt;" not in html


def _as_json(groups):
    return [g.as_json() for g in groups]


def test_a_kept_window_groups_as_a_fresh_read_would_after_new_and_cleared_errors(app):
    """WindowGroups keeps a window's rows by id and its groups: after errors are added (a few: read by id; many:
    the window read again) or cleared, its groups are those of grouping the window read afresh."""
    from runtracker.storage.errorfilter import ErrorFilter
    from runtracker.web.grouping import WindowGroups

    web = app.state.web
    kept = WindowGroups()
    flt = ErrorFilter()
    for minute in range(12):
        add_run(web.store, ("nikki", "laposta")[minute % 2], minute,
                errors=[("sync", f"KNVB{minute}", f"member KNVB{minute} not found"), ("sync", None, "timeout 3 s")])

    def check(size):
        count, groups = kept.groups(web.search, flt, size)
        fresh = web.search.error_window(flt, size)
        assert count == len(fresh)
        assert _as_json(groups) == _as_json(group(fresh))
        return groups

    first = check(10)
    assert check(10) is first  # the same ids: the same groups, kept
    add_run(web.store, "nikki", 20, errors=[("sync", "KNVB99", "member KNVB99 not found")])  # one new: by id
    assert check(10) is not first
    for minute in range(21, 30):  # most of the window new: read again
        add_run(web.store, "backup", minute, errors=[("download", None, f"HTTP 503 after {minute} s")])
    check(10)
    web.runs.clear_errors(ErrorFilter(step="download"))
    check(10)
    check(50)


def test_the_grouped_page_shows_a_dozen_pipelines_of_a_group_and_counts_the_rest(app, client):
    """A group seen in many pipelines lists the 12 newest and says how many more."""
    for minute in range(15):
        add_run(app.state.web.store, f"sync-{minute:02d}", minute, errors=[("sync", None, "timeout after 3 s")])
    html = client.get("/errors?view=groups").text
    assert html.count('href="/pipeline/sync-') == 12
    assert "and 3 more pipelines" in html
    assert 'href="/pipeline/sync-14"' in html and 'href="/pipeline/sync-00"' not in html
