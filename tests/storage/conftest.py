"""Fixtures of the storage tests that talk to the PostgreSQL server: a fresh schema per test, and a TCP proxy
between the store and the server that a test can cut."""

from __future__ import annotations

import uuid

import pytest
from tcp_proxy import Proxy

import pg_schemas


@pytest.fixture
def pg_url():
    """A fresh schema, and a URL that also names this test's connections (application_name)."""
    url = pg_schemas.new_schema_url("pg")
    try:
        yield f"{url}&application_name=rt_{uuid.uuid4().hex[:10]}"
    finally:
        pg_schemas.drop_schema_url(url)


@pytest.fixture
def proxy():
    """A TCP proxy to the PostgreSQL server, closed after the test."""
    p = Proxy()
    try:
        yield p
    finally:
        p.close()
