"""Hardening against a hostile client and a careless operator (issue 20): the login limiter, ids out of range,
headers on every answer, caching, body limits, bounded pages, the forwarded address and the session secret."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from weblib import PASSWORD, USER, login


def test_successful_logins_do_not_count_against_the_login_limit(app):
    """An office behind one address logs in many times a minute; only failures count (five, then 429)."""
    office = TestClient(app, follow_redirects=False, client=("10.0.0.9", 1234))
    for _ in range(8):
        assert login(office, USER, PASSWORD).status_code == 303
        office.cookies.clear()
    for _ in range(5):
        assert login(office, USER, "wrong password").status_code == 401
    assert login(office, USER, PASSWORD).status_code == 429
