"""The measuring functions of pagecheck.py on pages made to fail them: a contrast check that never finds a bad
colour, or an overflow check that never finds a wide page, would pass every page of the dashboard too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pagecheck import Text, body_luminance, chart_marks, contrast, label_mismatches, overflow
from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]


def wcag_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """WCAG 2 contrast of two sRGB colours (0-255), written out here apart from the JavaScript it checks."""

    def lum(c: tuple[float, float, float]) -> float:
        lin = [(v / 255 / 12.92) if v / 255 <= 0.04045 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def measured(page: Page, text: str) -> list[Text]:
    return [t for t in contrast(page) if t.text == text]


def test_grey_on_grey_is_found_and_black_on_white_passes(page: Page, served_page: Callable[..., str]) -> None:
    """#777 on #888 measures 1.29:1 and fails; black on the white page measures 21:1 and passes."""
    page.goto(served_page('<p style="color:#777;background:#888">faint</p><p style="color:#000">plain</p>'))
    [faint] = measured(page, "faint")
    [plain] = measured(page, "plain")
    assert faint.ratio == pytest.approx(wcag_ratio((0x77,) * 3, (0x88,) * 3), abs=0.01) and faint.fails
    assert faint.bg == "rgb(136, 136, 136)"
    assert plain.ratio == 21 and not plain.fails


def test_large_text_needs_three_to_one_and_small_text_four_and_a_half(page: Page,
                                                                      served_page: Callable[..., str]) -> None:
    """#888 on white (3.54:1) passes as 24 px text and as bold 19 px text, and fails as 16 px or plain 19 px text."""
    page.goto(served_page('<p style="color:#888;font-size:24px">big</p><p style="color:#888;font-size:19px;'
                          'font-weight:700">bold</p><p style="color:#888;font-size:19px">plain</p>'
                          '<p style="color:#888;font-size:16px">small</p>'))
    ratio = wcag_ratio((0x88,) * 3, (255,) * 3)
    assert 3 < ratio < 4.5
    results = {t.text: t for t in contrast(page)}
    assert not results["big"].fails and not results["bold"].fails
    assert results["plain"].fails and results["small"].fails
    assert results["small"].ratio == pytest.approx(ratio, abs=0.01)


def test_translucent_backgrounds_and_text_are_blended_over_what_is_below(page: Page,
                                                                          served_page: Callable[..., str]) -> None:
    """White text on half-white over black sits on mid grey (#808080), not on black; half-transparent black
    text on white is grey."""
    page.goto(served_page('<div style="background:#000"><div style="background:rgba(255,255,255,.5)">'
                          '<span style="color:#fff">veiled</span></div></div>'
                          '<p style="color:rgba(0,0,0,.5)">ghost</p>'))
    [veiled] = measured(page, "veiled")
    assert veiled.bg == "rgb(128, 128, 128)"
    assert veiled.ratio == pytest.approx(wcag_ratio((255,) * 3, (127.5,) * 3), abs=0.01)
    [ghost] = measured(page, "ghost")
    assert ghost.ratio == pytest.approx(wcag_ratio((127.5,) * 3, (255,) * 3), abs=0.01)


def test_generated_labels_and_svg_text_are_measured_too(page: Page, served_page: Callable[..., str]) -> None:
    """A cell's ::before label from attr(data-label) and an SVG <text> (its fill) are text to measure."""
    page.goto(served_page('<style>td::before{content:attr(data-label) ": ";color:#bbb}</style>'
                          '<table><tr><td data-label="started">today</td></tr></table>'
                          '<svg width="200" height="30"><text x="0" y="20" style="fill:#ccc">bars</text></svg>'))
    [label] = [t for t in contrast(page) if t.where.endswith("::before")]
    assert label.text == "started:" and label.fails
    [svg] = measured(page, "bars")
    assert svg.ratio == pytest.approx(wcag_ratio((0xCC,) * 3, (255,) * 3), abs=0.01) and svg.fails


def test_hidden_text_and_disabled_controls_are_not_measured(page: Page, served_page: Callable[..., str]) -> None:
    """Text in a closed <details>, under display:none or visibility:hidden, and a disabled button's label are
    left out (they are not shown, or exempt); the open summary is measured."""
    page.goto(served_page('<details><summary style="color:#eee">summary</summary><p style="color:#eee">inside</p>'
                          '</details><p style="display:none;color:#eee">gone</p>'
                          '<p style="visibility:hidden;color:#eee">invisible</p>'
                          '<button disabled style="color:#eee">off</button>'))
    texts = {t.text for t in contrast(page)}
    assert "summary" in texts
    assert not texts & {"inside", "gone", "invisible", "off"}


def test_a_wide_element_makes_the_page_overflow_and_is_named(page: Page, served_page: Callable[..., str]) -> None:
    """At 390 px a 600 px wide block makes the page scroll sideways, and the report names it; a page without
    it fits, and so does one with it inside a box that scrolls sideways itself."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(served_page('<meta name="viewport" content="width=device-width"><p>fits</p>'
                          '<div id="wide" style="width:600px">too wide</div>'))
    wide = overflow(page)
    assert wide["scrollWidth"] > wide["clientWidth"]
    assert any("div#wide right edge 608 px" in s for s in wide["sticking_out"]), wide
    page.goto(served_page('<meta name="viewport" content="width=device-width"><p>fits</p>', "/narrow"))
    narrow = overflow(page)
    assert narrow["scrollWidth"] <= narrow["clientWidth"] and narrow["sticking_out"] == []
    page.goto(served_page('<meta name="viewport" content="width=device-width"><div style="overflow-x:auto">'
                          '<div style="width:600px">scrolls in its box</div></div>', "/boxed"))
    boxed = overflow(page)
    assert boxed["scrollWidth"] <= boxed["clientWidth"] and boxed["sticking_out"] == []


def test_a_cell_labelled_with_another_column_is_reported(page: Page, served_page: Callable[..., str]) -> None:
    """A cell whose data-label differs from its column's heading is reported; a full-width row is not."""
    page.goto(served_page('<table id="t"><thead><tr><th>run</th><th>outcome</th></tr></thead><tbody>'
                          '<tr><td data-label="run">1</td><td data-label="started">ok</td></tr>'
                          '<tr><td colspan="2">No runs.</td></tr></tbody></table>'))
    assert label_mismatches(page) == ['t column 2: data-label "started", heading "outcome"']


@pytest.mark.parametrize("context_options", [{"color_scheme": "dark"}], indirect=False)
def test_the_dark_scheme_reaches_the_page_as_a_media_query(page: Page, served_page: Callable[..., str]) -> None:
    """A context with color_scheme="dark" applies a page's prefers-color-scheme: dark rules: its background
    measures black."""
    page.goto(served_page("<style>@media (prefers-color-scheme: dark) { body { background: #000 } }</style>x"))
    assert body_luminance(page) == 0
    page.emulate_media(color_scheme="light")
    assert body_luminance(page) == 1


def test_a_pale_bar_on_a_white_chart_is_found(page: Page, served_page: Callable[..., str]) -> None:
    """A chart bar of #ddd on white measures 1.36:1; a dark one 21:1."""
    page.goto(served_page('<figure style="background:#fff"><svg width="40" height="20">'
                          '<rect class="bar" x="0" y="0" width="10" height="20" style="fill:#ddd"/>'
                          '<rect class="bar" x="20" y="0" width="10" height="20" style="fill:#000"/></svg></figure>'))
    assert [m["ratio"] for m in chart_marks(page)] == [pytest.approx(wcag_ratio((0xDD,) * 3, (255,) * 3), abs=0.01), 21]
