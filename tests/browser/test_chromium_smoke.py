"""Chromium runs here: Playwright opens a local page in Debian's Chromium, clicks, reads, takes a screenshot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>smoke</title></head>
<body>
  <p id="status">not clicked</p>
  <button id="go" type="button">Click me</button>
  <script>
    document.getElementById("go").addEventListener("click", () => {
      document.getElementById("status").textContent = "clicked";
    });
  </script>
</body></html>
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_click_changes_the_text_and_the_page_can_be_screenshotted(
        page: Page, served_page: Callable[..., str], tmp_path: Path) -> None:
    page.goto(served_page(PAGE))
    assert page.title() == "smoke"
    assert page.text_content("#status") == "not clicked"

    page.click("#go")

    assert page.text_content("#status") == "clicked"
    shot = tmp_path / "smoke.png"
    page.screenshot(path=str(shot))
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, (len(data), data[:16])
