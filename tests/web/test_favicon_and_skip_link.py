"""/favicon.ico for browsers and bookmarks, and the skip link every page starts with (issue 21); the rendered
pages' width, contrast and dark theme are measured in Chromium (tests/browser/test_phone_and_contrast.py)."""

from __future__ import annotations

import re
import struct

from webdata import add_run


def ico_sizes(data: bytes) -> list[int]:
    """The square sizes an ICO file holds (its directory), each image checked to be a PNG inside the file."""
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1), "not an icon file"
    sizes = []
    for i in range(count):
        width, height, _, _, _, _, length, offset = struct.unpack("<BBBBHHII", data[6 + 16 * i: 22 + 16 * i])
        assert width == height and data[offset: offset + 8] == b"\x89PNG\r\n\x1a\n" and offset + length <= len(data)
        sizes.append(width or 256)
    return sizes


def test_favicon_ico_is_an_icon_served_without_a_login(anon):
    """GET /favicon.ico without a session: 200, image/x-icon, an icon of 16, 32 and 48 px, cacheable."""
    response = anon.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert ico_sizes(response.content) == [16, 32, 48]
    assert "no-store" not in response.headers.get("cache-control", "")
    assert "content-security-policy" in response.headers


def test_every_page_starts_with_a_skip_link_to_the_main_content(anon, client, app):
    """The login page and the logged-in pages: the first link in <body> is "Skip to content", to <main id=content>."""
    add_run(app.state.web.store, "nikki", 1, outcome="partial", errors=[("sync", "KNVB1", "boom")])
    pages = [anon.get("/login").text] + [client.get(path).text for path in ("/", "/pipeline/nikki", "/errors")]
    for html in pages:
        body = html.split("<body", 1)[1]
        first = re.search(r"<(a|button|input|select|textarea|summary)\b[^>]*>([^<]*)", body)
        assert first and 'href="#content"' in first.group(0) and first.group(2) == "Skip to content", first
        assert re.search(r'<main id="content"[^>]*>', body)
