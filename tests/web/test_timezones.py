"""Times on the dashboard's pages in the display zone, over HTTP on both backends: which zone a page uses (the
user's own > the browser's cookie > the configured one > UTC), that every time on every page goes through it
(no stored ISO text left in what a reader sees), UTC in the tooltips, and wrong names never breaking a page."""

from __future__ import annotations

import html as markup
import logging
import re
from pathlib import Path

import pytest
from webdata import add_run

from runtracker.settings import display

RUN_START = "2026-03-29T01:15:00.000Z"  # 03:15 CEST in Amsterdam, 21:15 EDT the day before in New York
RUN_END = "2026-03-29T01:20:30.000Z"
ERROR_AT = "2026-03-29T01:16:00.000Z"
STORED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
FOOTER = re.compile(r'<footer [^>]*id="display-zone"[^>]*>(.*?)</footer>', re.S)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The dashboard's zone is New York; `nightly` runs on a schedule (in Amsterdam time)."""
    path = tmp_path / "runtracker.toml"
    path.write_text('[dashboard]\ntimezone = "America/New_York"\n\n'
                    '[pipelines.nightly]\nschedule = "15 3 * * *"\ntimezone = "Europe/Amsterdam"\n')
    return path


@pytest.fixture
def run_id(app) -> int:
    """A finished run of nikki with a step and an error, at fixed times."""
    store = app.state.web.store
    run_id = add_run(store, "nikki", 0, started_at=RUN_START, finished_at=RUN_END, duration_ms=330_000,
                     outcome="partial", errors=[("sync", "KNVB1", "no e-mail address")])
    with store.transaction() as cur:
        cur.execute(store.sql("UPDATE run_errors SET created_at = ? WHERE run_id = ?"), (ERROR_AT, run_id))
        cur.execute(store.sql("INSERT INTO run_steps (run_id, step_name, started_at, finished_at, duration_ms,"
                              " outcome) VALUES (?, 'sync', ?, ?, 300000, 'partial')"), (run_id, RUN_START, RUN_END))
    return run_id


def footer(html: str) -> str:
    match = FOOTER.search(html)
    assert match, "no display-zone footer"
    return markup.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def test_without_a_users_zone_or_a_cookie_a_page_is_in_the_configured_zone(client, run_id):
    """The run's start, end and steps are in New York time, each with its exact UTC time as its tooltip; the
    footer says which zone and why; the page asks the browser for its zone."""
    html = client.get(f"/run/{run_id}").text
    assert '<time datetime="2026-03-29T01:15:00.000Z" title="2026-03-29 01:15:00.000 UTC">2026-03-28 21:15:00 EDT' \
           '</time>' in html
    assert '<time datetime="2026-03-29T01:20:30.000Z" title="2026-03-29 01:20:30.000 UTC">2026-03-28 21:20:30 EDT' \
           '</time>' in html
    assert footer(html) == ("Times in America/New_York (the dashboard's setting); exact UTC in each time's tooltip. "
                            "Change")
    assert 'data-timezone="America/New_York"' in html and "data-timezone-ask" in html


def test_the_browsers_zone_wins_over_the_configured_one(client, run_id):
    """The cookie the page's script sets (the browser's Intl zone) is the zone of the next page."""
    client.cookies.set(display.BROWSER_COOKIE, "Asia/Tokyo")
    html = client.get(f"/run/{run_id}").text
    assert ">2026-03-29 10:15:00 JST</time>" in html
    assert footer(html).startswith("Times in Asia/Tokyo (your browser's zone)")


def test_the_users_own_zone_wins_over_the_browsers(app, client, run_id):
    """`runtracker user timezone alice Europe/Amsterdam`: alice reads Amsterdam time whatever her browser says,
    and her pages do not ask the browser (its zone would change nothing)."""
    client.cookies.set(display.BROWSER_COOKIE, "Asia/Tokyo")
    assert app.state.web.auth.set_timezone("alice", "Europe/Amsterdam")
    html = client.get(f"/run/{run_id}").text
    assert ">2026-03-29 03:15:00 CEST</time>" in html and "JST" not in html
    assert footer(html).startswith("Times in Europe/Amsterdam (your own setting)")
    assert "data-timezone-ask" not in html
    assert app.state.web.auth.set_timezone("alice", None)
    assert ">2026-03-29 10:15:00 JST</time>" in client.get(f"/run/{run_id}").text


@pytest.mark.parametrize("cookie", ["Mars/Olympus_Mons", "../../../etc/passwd", "Europe/Amsterdam\\x00", "",
                                    "x" * 500])
def test_a_cookie_that_names_no_zone_is_passed_over(client, run_id, cookie):
    """A cookie is the client's text: one that is no zone here leaves the page in the configured zone."""
    client.cookies.set(display.BROWSER_COOKIE, cookie)
    response = client.get(f"/run/{run_id}")
    assert response.status_code == 200
    assert ">2026-03-28 21:15:00 EDT</time>" in response.text


def test_a_users_zone_this_machine_does_not_know_is_passed_over(app, client, run_id):
    """A zone stored for a user (by another machine with newer tzdata, or by hand) that this one does not know
    gives way to the browser's."""
    assert app.state.web.auth.set_timezone("alice", "Atlantis/Poseidonia")
    client.cookies.set(display.BROWSER_COOKIE, "Asia/Tokyo")
    assert ">2026-03-29 10:15:00 JST</time>" in client.get(f"/run/{run_id}").text


def test_a_wrong_configured_zone_is_one_warning_and_the_pages_are_in_utc(client, run_id, monkeypatch, caplog):
    """$RUNTRACKER_TIMEZONE misspelt: every page works, in UTC, and the server warns once, not per page."""
    monkeypatch.setenv(display.TIMEZONE_ENV, "Europe/Amsterdan")
    with caplog.at_level(logging.WARNING, logger="runtracker"):
        for _ in range(3):
            html = client.get(f"/run/{run_id}").text
            assert ">2026-03-29 01:15:00 UTC</time>" in html
    warnings = [r.getMessage() for r in caplog.records if "RUNTRACKER_TIMEZONE" in r.getMessage()]
    assert warnings == ["runtracker: RUNTRACKER_TIMEZONE='Europe/Amsterdan' (environment variable) is not a time "
                        "zone (use a name such as Europe/Amsterdam or UTC); using UTC (times are shown in UTC)"]
    assert footer(html).startswith("Times in UTC (the server's setting)")


def test_a_relative_time_has_the_local_and_the_utc_time_in_its_tooltip(client, run_id):
    """`when`: "… ago" on the page, the exact local time and the exact UTC time in the tooltip (the error list)."""
    html = client.get("/errors").text
    assert re.search(r'<time datetime="2026-03-29T01:16:00.000Z" title="2026-03-28 21:16:00 EDT · 2026-03-29 '
                     r'01:16:00.000 UTC">\d+ days ago</time>', html)


def test_the_schedule_lines_of_a_card_are_in_the_display_zone(client):
    """A scheduled pipeline's "Next:" is in the reader's zone (New York), not the schedule's (Amsterdam), with
    its UTC time as the tooltip."""
    html = client.get("/").text
    match = re.search(r'<p class="next-run" data-testid="next-run" title="([^"]+)">([^<]+)</p>', html)
    assert match, "no next run line"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:15:00\.000 UTC", match.group(1))
    assert re.fullmatch(r"Next: .*\d\d:15 E[SD]T", match.group(2))


def visible(html: str) -> str:
    """What a reader sees of a page, and its tooltips: without the machine-readable `datetime` and `data-*`
    attributes and the links (a page's cursor links hold stored times)."""
    return re.sub(r'\s(datetime|href|action|value|data-[\w-]+)="[^"]*"', "", html)


@pytest.mark.parametrize("path", ["/", "/pipeline/nikki", "/run/{run_id}", "/errors", "/errors?view=groups",
                                  "/errors/{run_id}", "/member/KNVB1"])
def test_no_page_shows_a_time_as_stored(client, run_id, path):
    """Every time on every page goes through the display zone: no stored ISO text is left for a reader, and the
    page's times are in New York time."""
    client.cookies.set(display.BROWSER_COOKIE, "America/New_York")
    response = client.get(path.format(run_id=run_id))
    assert response.status_code == 200, response.text
    assert STORED.search(response.text), "the page has no time at all: this test would prove nothing"
    assert [m.group(0) for m in STORED.finditer(visible(response.text))] == []


def test_a_forms_answer_does_not_ask_the_browser_to_reload_it(client):
    """Only a page got by GET may be loaded again for the browser's zone: a form's answer never (it would post
    the form again)."""
    response = client.post("/pipeline/nikki/start", data={"csrf_token": "wrong"})
    assert response.status_code == 403
    assert "data-timezone-ask" not in response.text and 'data-timezone="America/New_York"' in response.text


def error_rows(app, times: list[str]) -> None:
    """A run of laposta started at each of `times`, with one error then, its message the time."""
    store = app.state.web.store
    for t in times:
        run_id = add_run(store, "laposta", 0, started_at=t, finished_at=t, errors=[("sync", None, t)])
        with store.transaction() as cur:
            cur.execute(store.sql("UPDATE run_errors SET created_at = ? WHERE run_id = ?"), (t, run_id))


def shown_errors(html: str) -> list[str]:
    return re.findall(r'<td class="message"[^>]*>\s*(\S+?)\s*</td>', html)


def test_the_error_browsers_days_are_the_readers_days_dst_included(app, client):
    """`since` and `until` (whole days) are days on the reader's wall clock: in Amsterdam, 2026-03-29 (23 hours
    long) runs from 23:00 UTC the day before to 22:00 UTC; an API client, with no page zone, keeps UTC days."""
    times = ["2026-03-28T22:30:00.000Z", "2026-03-28T23:30:00.000Z", "2026-03-29T21:30:00.000Z",
             "2026-03-29T22:30:00.000Z", "2026-03-30T02:00:00.000Z"]
    error_rows(app, times)
    query = "/errors?pipeline=laposta&since=2026-03-29&until=2026-03-29"
    assert sorted(shown_errors(client.get(query).text)) == times[2:5]  # New York: UTC-4 that day
    assert app.state.web.auth.set_timezone("alice", "Europe/Amsterdam")
    assert sorted(shown_errors(client.get(query).text)) == times[1:3]  # 00:30 CET to 23:30 CEST
    assert sorted(shown_errors(client.get(query.replace("since=2026-03-29", "since=2026-03-28T23:31Z")).text)) == \
        times[2:3]
    assert app.state.web.auth.set_timezone("alice", "UTC")
    assert sorted(shown_errors(client.get(query).text)) == times[2:4]


def test_clearing_errors_by_day_clears_the_days_the_page_counted(app, client):
    """The clear form posts the same days the confirmation page counted in the reader's zone."""
    times = ["2026-03-29T21:30:00.000Z", "2026-03-29T22:30:00.000Z"]  # 23:30 and 00:30 (the next day) in Amsterdam
    error_rows(app, times)
    assert app.state.web.auth.set_timezone("alice", "Europe/Amsterdam")
    page = client.get("/errors/clear?pipeline=laposta&until=2026-03-29").text
    assert re.search(r"\b1 error", page), page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/errors/clear", data={"csrf_token": token, "pipeline": "laposta", "until": "2026-03-29",
                                       "confirm": "yes"})
    assert shown_errors(client.get("/errors?pipeline=laposta").text) == [times[1]]


def csrf_of(client, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def test_the_account_page_sets_and_clears_the_users_own_zone(app, client, run_id):
    """/account: the zone in use and why, a form suggesting every zone; saving one makes it the user's own (it
    wins over the browser's), saving nothing clears it."""
    client.cookies.set(display.BROWSER_COOKIE, "Asia/Tokyo")
    page = client.get("/account").text
    assert 'data-testid="zone-in-use">Asia/Tokyo</strong> (your browser' in page
    assert '<option value="Europe/Amsterdam">' in page and '<option value="UTC">' in page
    token = csrf_of(client, "/account")
    response = client.post("/account/timezone", data={"csrf_token": token, "timezone": " Europe/Amsterdam "})
    assert (response.status_code, response.headers["location"]) == (303, "/account")
    assert app.state.web.auth.user("alice")["timezone"] == "Europe/Amsterdam"
    assert "Times are now shown in Europe/Amsterdam." in client.get("/account").text
    assert ">2026-03-29 03:15:00 CEST</time>" in client.get(f"/run/{run_id}").text
    assert client.post("/account/timezone", data={"csrf_token": token, "timezone": ""}).status_code == 303
    assert app.state.web.auth.user("alice")["timezone"] is None
    assert ">2026-03-29 10:15:00 JST</time>" in client.get(f"/run/{run_id}").text


@pytest.mark.parametrize("zone", ["Europe/Amsterdan", "../../etc/passwd", "x" * 1000])
def test_the_account_page_refuses_a_name_that_is_no_zone(app, client, zone):
    assert app.state.web.auth.set_timezone("alice", "Asia/Tokyo")
    response = client.post("/account/timezone", data={"csrf_token": csrf_of(client, "/account"), "timezone": zone})
    assert response.status_code == 400 and "not a time zone" in response.text
    assert app.state.web.auth.user("alice")["timezone"] == "Asia/Tokyo"


def test_the_account_page_needs_a_login_and_its_form_a_csrf_token(app, anon, client):
    assert anon.get("/account").status_code == 303
    assert anon.post("/account/timezone", data={"timezone": "UTC"}).status_code == 303
    assert client.post("/account/timezone", data={"csrf_token": "forged", "timezone": "UTC"}).status_code == 403
    assert app.state.web.auth.user("alice")["timezone"] is None


def test_how_far_the_error_browser_searched_is_said_in_the_display_zone(app, client, monkeypatch):
    """"Searched back to …" (a free-text search stopped at its window) is a time like any other."""
    from runtracker.storage.search import ErrorSearch

    monkeypatch.setattr(ErrorSearch, "ERROR_WINDOW", 3)
    for minute in range(6):
        add_run(app.state.web.store, "nikki", minute, errors=[("sync", "M1", "hay")])
    html = client.get("/errors?q=needle").text
    match = re.search(r'data-testid="window-end">Searched back to (<time [^>]*>[^<]*</time>)', html)
    assert match, html
    assert re.fullmatch(r'<time datetime="[^"]+Z" title="[^"]+ UTC">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T</time>',
                        match.group(1))


def test_the_login_page_never_asks_to_be_loaded_again(anon):
    """The login page shows no time and is typed into: its script sets the browser's zone without a reload."""
    html = anon.get("/login").text
    assert 'data-timezone="America/New_York"' in html and "data-timezone-ask" not in html
