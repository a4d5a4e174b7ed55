"""A bounded walk tries a small window first (ErrorSearch.FIRST_WINDOW_DIVISOR): what it shows must be exactly what
the whole window alone shows — every page, its cursor, where it stopped searching, the count and the groups."""

from __future__ import annotations

import pytest
from webdata import add_run

from runtracker.storage.errorfilter import ErrorFilter
from runtracker.storage.search import ErrorSearch

FILTERS = [
    ErrorFilter(text="needle"),
    ErrorFilter(pipeline="nikki"),
    ErrorFilter(pipeline="nikki", text="needle"),
    ErrorFilter(member="M1", pipeline="laposta"),
    ErrorFilter(member="M1", text="needle"),
    ErrorFilter(step="sync", text="hay"),
]


def _everything(search: ErrorSearch, flt: ErrorFilter) -> list[object]:
    """Every page (rows, next cursor, window end) from the first to the last, the count and the group window."""
    seen: list[object] = []
    cursor = None
    for _ in range(200):
        page = search.errors(flt, 4, cursor)
        seen.append(([row["id"] for row in page.rows], page.next and page.next.fields(), page.window_end))
        if page.next is None:
            break
        cursor = page.next
    seen.append(search.count_errors(flt, 6))
    seen.append([row["error_message"] for row in search.error_window(flt, 5)])
    return seen


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.fields().items() if v))
def test_the_small_window_first_shows_what_the_whole_window_shows(app, monkeypatch, flt):
    store = app.state.web.store
    for minute in range(40):
        pipeline = ("nikki", "laposta", "backup")[minute % 3]
        errors = [] if minute % 5 == 4 else [
            ("sync", f"M{minute % 2}", "the needle" if minute % 7 == 0 else "hay"),
            ("download", "M1", "hay and a needle" if minute % 11 == 0 else "more hay")]
        add_run(store, pipeline, minute, errors=errors)
    monkeypatch.setattr(ErrorSearch, "ERROR_WINDOW", 12)
    monkeypatch.setattr(ErrorSearch, "RUN_WINDOW", 6)
    search = app.state.web.search
    monkeypatch.setattr(ErrorSearch, "FIRST_WINDOW_DIVISOR", 1)  # the whole window at once
    whole = _everything(search, flt)
    monkeypatch.setattr(ErrorSearch, "FIRST_WINDOW_DIVISOR", 4)
    assert _everything(search, flt) == whole
