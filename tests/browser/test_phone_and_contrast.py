"""Every page of the dashboard on a phone and on a laptop, in the light and the dark theme (issue 21): no page
wider than the window, every text at 4.5:1 (3:1 large) against its background, the dark theme applied, table
cells labelled with their column, a skip link first and a visible focus ring on everything focusable.

The pages are every GET route of `runtracker.web.app.routes()` that answers HTML — enumerated from the app, so a
page added later is measured too; a route with parameters needs example URLs (cockpitdata.example_urls) and the
test fails until it has them. One dashboard serves the module (cockpitdata's history: every outcome, a real crash
with a long traceback, long member ids, a hostile long pipeline name); each theme has one browser context, and
each page is loaded once and measured at both widths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browserlib import DEFAULT_TIMEOUT_MS, Dashboard, login, start_dashboard, stop_dashboard
from cockpitdata import VARIANTS, Cockpit, build, config_file, example_urls
from pagecheck import GRAPHICS, body_luminance, chart_marks, contrast, focus_ring, label_mismatches, overflow
from playwright.sync_api import Browser, BrowserContext, Page
from starlette.routing import Route

from runtracker.web.app import routes

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
THEMES = ["light", "dark"]

# GET routes with parameters that are not pages: the JSON API's (its modules) and these; every other one needs
# example URLs.
JSON_MODULES = ("runtracker.web.api", "runtracker.web.ingest")
NOT_PAGES = {"/run/{run_id:id}/summary.json"}


@dataclass
class Site:
    dashboard: Dashboard
    ids: Cockpit


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`runtracker serve --demo` on cockpitdata's history (SQLite), for the whole module."""
    work = tmp_path_factory.mktemp("cockpit")
    db = f"sqlite:///{work / 'dashboard.sqlite'}"
    ids = build(work, db)
    server = start_dashboard(db, work / "serve.log", extra_args=["--config", str(config_file(work))])
    try:
        yield Site(server, ids)
    finally:
        code = stop_dashboard(server)
        print(f"--- runtracker serve (exit code {code}) output ---\n{server.output()}")


def get_routes() -> list[str]:
    """The paths of the app's routes that answer GET, as the app spells them, but the JSON API's with
    parameters."""
    return [r.path for r in routes() if isinstance(r, Route) and (r.methods is None or "GET" in r.methods)
            and not ("{" in r.path and r.endpoint.__module__ in JSON_MODULES)]


def page_paths(page: Page, site: Site) -> list[str]:
    """Every page to measure: each GET route without parameters that answers HTML (asked without rendering),
    each route with parameters through its example URLs, and VARIANTS. Fails naming a route with parameters
    that has no examples."""
    examples = example_urls(site.ids)
    missing = [p for p in get_routes() if "{" in p and p not in examples and p not in NOT_PAGES]
    assert not missing, (f"routes with parameters and no example URL: {missing}; add pages of them to"
                         " cockpitdata.example_urls (or to NOT_PAGES if they answer no HTML)")
    paths = []
    for path in get_routes():
        if "{" in path:
            paths += examples.get(path, [])
        elif path != "/login":  # measured before logging in
            answer = page.context.request.get(site.dashboard.url + path, max_redirects=0)
            if answer.status == 200 and answer.headers.get("content-type", "").startswith("text/html"):
                paths.append(path)
    return paths + VARIANTS


def theme_context(browser: Browser, theme: str) -> BrowserContext:
    context = browser.new_context(viewport=PHONE, color_scheme=theme)  # type: ignore[arg-type]
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return context


def measure(page: Page, path: str, theme: str, problems: list[str], lowest: dict[str, tuple[float, str]]) -> None:
    """The loaded page, every <details> opened, at both widths: overflow, contrast; once: the theme's
    background, the cells' labels and the charts' bars (3:1 against the chart's background)."""
    path = path if len(path) <= 70 else path[:70] + "…"
    # What a click opens is on the page too: stacks, the summary's JSON, a group's runs and members.
    page.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    for size in (PHONE, LAPTOP):
        page.set_viewport_size(size)
        width = size["width"]
        fit = overflow(page)
        if fit["scrollWidth"] > fit["clientWidth"]:
            problems.append(f"{path} at {width} px: {fit['scrollWidth']} px wide in {fit['clientWidth']} px;"
                            f" sticking out: {fit['sticking_out']}")
        for text in contrast(page):
            if text.ratio is not None and text.ratio < lowest.get("ratio", (99.0, ""))[0]:
                lowest["ratio"] = (text.ratio, f"{path} at {width} px: {text}")
            if text.fails and f"{path} at {width} px: {text}" not in problems:
                problems.append(f"{path} at {width} px: {text}")
    luminance = body_luminance(page)
    if luminance is None or (luminance > 0.05 if theme == "dark" else luminance < 0.8):
        problems.append(f"{path}: the {theme} theme is not applied (page background luminance {luminance})")
    problems.extend(f"{path}: {wrong}" for wrong in label_mismatches(page))
    for mark in chart_marks(page):
        if mark["ratio"] is None or mark["ratio"] < GRAPHICS:
            problems.append(f"{path}: a chart's bar at {mark['ratio']}:1, needs {GRAPHICS}:1: {mark}")


@pytest.mark.parametrize("theme", THEMES)
def test_every_page_fits_a_phone_and_its_text_reads_in_both_widths(theme: str, browser: Browser, site: Site,
                                                                   tmp_path: Path) -> None:
    """Each page at 390x844 and 1280x800: no wider than the window, every visible text at least 4.5:1 (3:1
    large) on its background, the theme's background, each table cell labelled with its column, chart bars
    at 3:1."""
    context = theme_context(browser, theme)
    problems: list[str] = []
    lowest: dict[str, tuple[float, str]] = {}
    try:
        page = context.new_page()
        page.goto(site.dashboard.url + "/login")
        measure(page, "/login", theme, problems, lowest)
        login(page, site.dashboard.url)
        paths = page_paths(page, site)
        for path in paths:
            page.set_viewport_size(PHONE)
            response = page.goto(site.dashboard.url + path)
            assert response is not None and response.status in (200, 404), (path, response and response.status)
            assert "/login" not in page.url, f"{path} led to the login page"
            measure(page, path, theme, problems, lowest)
    except BaseException:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        context.close()
    print(f"{theme}: {len(paths) + 1} pages; lowest contrast {lowest.get('ratio')}")
    assert {"/", "/errors", "/errors/clear"} <= set(paths)
    assert not problems, f"{len(problems)} problems ({theme}):\n" + "\n".join(problems[:60])


@pytest.mark.parametrize("theme", THEMES)
def test_the_skip_link_comes_first_and_every_focused_control_shows_a_ring(theme: str, browser: Browser,
                                                                          site: Site) -> None:
    """On a phone: the first Tab shows "Skip to content" in the window; every element Tab reaches after it on the
    overview, the grouped errors and a crashed run has an outline of 2 px or more at 3:1 against what is around
    it; Enter on the skip link moves the focus to <main>."""
    context = theme_context(browser, theme)
    problems: list[str] = []
    try:
        page = context.new_page()
        login(page, site.dashboard.url)
        for path in ("/", "/errors?view=groups", f"/run/{site.ids.crashed}"):
            page.goto(site.dashboard.url + path)
            page.keyboard.press("Tab")
            skip = page.evaluate("() => { const a = document.activeElement, r = a.getBoundingClientRect();"
                                 " return {id: a.id, text: a.textContent, top: r.top, left: r.left,"
                                 " right: r.right}; }")
            assert skip["id"] == "skip-link" and skip["text"] == "Skip to content", (path, skip)
            assert skip["top"] >= 0 and skip["left"] >= 0 and skip["right"] <= PHONE["width"], (path, skip)
            reached = []
            ring = focus_ring(page)
            while ring["where"] not in ("body", "a#skip-link") or not reached:
                reached.append(ring["where"])
                if ring["problem"]:
                    problems.append(f"{path}: {ring}")
                if len(reached) > 300:
                    break
                page.keyboard.press("Tab")
                ring = focus_ring(page)
            assert len(reached) > 5, f"{path}: Tab reached only {reached}"
            page.focus("#skip-link")
            page.keyboard.press("Enter")
            assert page.evaluate("document.activeElement.id") == "content", path
    finally:
        context.close()
    assert not problems, "\n".join(problems[:40])


PIPELINE_STATES = ["ok", "failing", "running", "late-heartbeat", "overdue", "too-long", "never-ran", "silenced"]
RUN_OUTCOMES = ["success", "partial", "failure", "running", "skipped"]


@pytest.mark.parametrize("theme", THEMES)
def test_a_badge_for_every_pipeline_state_and_outcome_reads_in_both_themes(theme: str, browser: Browser,
                                                                            site: Site) -> None:
    """`.badge.<state>` for each pipeline state and run outcome, put on a dashboard page (app.css as served): text
    at 4.5:1 on the badge, and each pipeline state a colour of its own, not the default badge's."""
    context = theme_context(browser, theme)
    try:
        page = context.new_page()
        login(page, site.dashboard.url)
        page.goto(site.dashboard.url + "/errors/clear")
        page.evaluate("""(names) => {
            const box = document.getElementById("content");
            for (const name of names) {
              const span = document.createElement("span");
              span.className = "badge " + name;
              span.textContent = "state " + name;
              box.appendChild(span);
            }
            const plain = document.createElement("span");
            plain.className = "badge";
            plain.textContent = "state default";
            box.appendChild(plain);
          }""", PIPELINE_STATES + RUN_OUTCOMES)
        badges = {t.text.removeprefix("state "): t for t in contrast(page) if t.text.startswith("state ")}
    finally:
        context.close()
    assert set(badges) == {*PIPELINE_STATES, *RUN_OUTCOMES, "default"}
    weak = [str(t) for t in badges.values() if t.fails]
    assert not weak, "\n".join(weak)
    colours = {state: badges[state].bg for state in PIPELINE_STATES}
    assert len(set(colours.values())) == len(PIPELINE_STATES), colours
    assert badges["default"].bg not in {colours[s] for s in PIPELINE_STATES if s != "never-ran"}, colours
