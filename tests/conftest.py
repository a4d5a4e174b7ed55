"""Shared fixtures: a real database per test (SQLite file, or a PostgreSQL schema of its own), process-state
reset, and the never-raise guard made loud."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

import pytest

from runtracker import testing
from runtracker.core.state import STATE

sys.path.insert(0, os.path.dirname(__file__))

from helpers import BACKENDS, drop_db_url, make_db_url  # noqa: E402

# Property-based tests (tests/unit/test_properties.py): a bounded profile for `make test`, a long one by hand
# (HYPOTHESIS_PROFILE=long; docs/development.md). No example database in the bounded one: nothing is written
# into the checkout, and every run tries fresh examples.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the test extra is not installed: test_properties.py is skipped
    pass
else:
    _LENIENT = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
    settings.register_profile("bounded", max_examples=40, stateful_step_count=20, deadline=None, database=None,
                              suppress_health_check=_LENIENT)
    settings.register_profile("long", max_examples=2000, stateful_step_count=60, deadline=None,
                              suppress_health_check=_LENIENT)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "bounded"))

# Whole files of tests that start real processes (pipelines that really crash, reapers, wrappers, servers
# cut off by a proxy); elsewhere such a test is marked `@pytest.mark.subprocess` by hand. `make test-fast`
# leaves them out; `make test` runs everything.
SUBPROCESS_PATHS = ("crash/", "reaper/", "exec/", "alerts/", "test_load.py", "test_cli_migrate.py",
                    "storage/test_postgres_store.py")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "swallows: the test expects the never-raise guard to swallow errors")
    config.addinivalue_line("markers", "subprocess: the test starts real processes (not in `make test-fast`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        path = os.path.relpath(str(item.path), here).replace(os.sep, "/")
        if path.startswith(SUBPROCESS_PATHS):
            item.add_marker(pytest.mark.subprocess)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database for this test, on each backend."""
    url = make_db_url(request.param, tmp_path, request.node.name)
    try:
        yield url
    finally:
        drop_db_url(url)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'dashboard.sqlite'}"


@pytest.fixture(autouse=True)
def _no_zone_of_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times are shown in a display zone that the environment can set ($RUNTRACKER_TIMEZONE, and $TZ for the
    command line): no test depends on the machine's. A test that wants a zone sets it."""
    monkeypatch.delenv("RUNTRACKER_TIMEZONE", raising=False)
    monkeypatch.delenv("TZ", raising=False)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    testing.reset()
    yield
    testing.reset()


@pytest.fixture(autouse=True)
def _loud_guard(request: pytest.FixtureRequest) -> Iterator[list[BaseException]]:
    """Anything the guard swallows fails the test, unless the test says it expects that."""
    with testing.capture_swallowed() as swallowed:
        yield swallowed
    if request.node.get_closest_marker("swallows") is None and swallowed:
        raise AssertionError(f"runtracker swallowed errors: {swallowed!r}")


# Threads that hold a store: one still alive after its test writes into a database the test has closed
# ("Cannot operate on a closed database", logged into a later test) or into the next test's tables.
_STORE_THREADS = ("runtracker-alerts-", "runtracker-monitor")


@pytest.fixture(autouse=True)
def _no_store_threads_left() -> Iterator[None]:
    """A test that starts the monitor or the alerts' sending threads stops and joins them before it ends."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name.startswith(_STORE_THREADS)]
    assert not left, f"threads left running after the test (stop and join them): {left}"


@pytest.fixture
def swallowed() -> list[BaseException]:
    assert STATE.guard.swallowed is not None
    return STATE.guard.swallowed
