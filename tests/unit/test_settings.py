"""The settings package: each value knows its source, is resolved once per value, and is forgotten in one reset;
the settings layer imports only the base layer; one function opens a run for every front door."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

import runtracker
from runtracker import RunTracker, testing
from runtracker.base import redact
from runtracker.core.state import STATE
from runtracker.settings import effective, values
from runtracker.settings.state import SETTINGS

PACKAGE = Path(runtracker.__file__).resolve().parent


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNTRACKER_RETENTION_DAYS", "RUNTRACKER_LOG_LINES", "RUNTRACKER_REDACT", "RUNTRACKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _runtracker_imports(path: Path) -> set[str]:
    """The runtracker modules a module imports (relative imports made absolute), at any level of its code."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = ["runtracker", *parts[:-1]]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("runtracker")}


@pytest.mark.parametrize("room, allowed", [
    ("base", ("runtracker.base",)),
    ("settings", ("runtracker.base", "runtracker.settings")),
])
def test_the_lower_layers_import_nothing_above_them(room, allowed):
    """base imports only base; settings only base and itself (no storage, core or anything above)."""
    upward = sorted(f"{path.name}: {name}" for path in (PACKAGE / room).glob("*.py")
                    for name in _runtracker_imports(path) if not name.startswith(allowed))
    assert upward == []


def test_a_setting_knows_whether_it_came_from_the_argument_the_environment_or_the_default(monkeypatch):
    """values.setting gives the value with its source and where; a wrong one its warning, as it would be logged."""
    assert values.setting("retention_days", 7).fields() == {
        "name": "retention_days", "value": 7, "source": "argument", "where": "retention_days=", "raw": 7,
        "warnings": ()}
    assert values.setting("retention_days").fields() == {
        "name": "retention_days", "value": 3, "source": "default", "where": "", "raw": None, "warnings": ()}
    monkeypatch.setenv("RUNTRACKER_RETENTION_DAYS", "30d")
    wrong = values.setting("retention_days")
    assert (wrong.value, wrong.source, wrong.where, wrong.raw) == (0, "environment", "RUNTRACKER_RETENTION_DAYS", "30d")
    assert wrong.warnings == ("runtracker: RUNTRACKER_RETENTION_DAYS='30d' (environment variable) is not a whole "
                              "number of days from 0 to 36,500; using 0 (every run is kept)",)


def test_an_environment_value_is_resolved_once_and_again_when_it_changes(monkeypatch):
    """The same text of a variable gives the same resolved setting; a pipeline that changes it gets the new one."""
    monkeypatch.setenv("RUNTRACKER_LOG_LINES", "7")
    first = values.setting("log_lines")
    assert values.setting("log_lines") is first and RunTracker("nikki").log_lines == 7
    monkeypatch.setenv("RUNTRACKER_LOG_LINES", "9")
    assert values.setting("log_lines") is not first and RunTracker("nikki").log_lines == 9


def test_one_reset_forgets_the_warnings_the_resolved_settings_and_the_redaction_rules(monkeypatch, caplog):
    """testing.reset() (the process state's reset) warns again, resolves again and rebuilds the redaction rules."""
    caplog.set_level(logging.WARNING, logger="runtracker")
    monkeypatch.setenv("RUNTRACKER_RETENTION_DAYS", "abc")
    RunTracker("nikki")
    RunTracker("nikki")
    assert len([r for r in caplog.records if "RUNTRACKER_RETENTION_DAYS='abc'" in r.getMessage()]) == 1
    assert redact.redact("password=hunter2") == "password=***"
    monkeypatch.setenv("RUNTRACKER_REDACT", "off")
    assert redact.redact("password=hunter2") == "password=***"  # the rules are built once
    assert STATE.settings is SETTINGS and SETTINGS.resolved and SETTINGS.warned
    testing.reset()
    assert not SETTINGS.resolved and not SETTINGS.warned
    assert redact.redact("password=hunter2") == "password=hunter2"
    RunTracker("nikki")
    assert len([r for r in caplog.records if "RUNTRACKER_RETENTION_DAYS='abc'" in r.getMessage()]) == 2


def test_the_settings_object_holds_every_setting_with_its_source():
    """effective.current() has one Setting per name, the library's (values.SPEC) among them."""
    settings = effective.current(db="runs.sqlite")
    assert set(values.SPEC) <= set(effective.NAMES)
    assert [getattr(settings, name).name for name in effective.NAMES] == list(effective.NAMES)
    assert (settings.db.source, settings.retention_days.source) == ("argument", "default")


def test_only_core_opening_opens_a_run():
    """The tracker, runtracker exec and the ingest API open runs through `opening.open_run`, nothing else."""
    callers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("open_run", "open_remote_run")
                    and isinstance(node.func.value, ast.Name)):
                callers.add((str(path.relative_to(PACKAGE)), f"{node.func.value.id}.{node.func.attr}"))
    assert callers == {
        ("core/opening.py", "lifecycle.open_run"), ("core/opening.py", "lifecycle.open_remote_run"),
        ("core/tracker.py", "opening.open_run"), ("exec/wrapper.py", "opening.open_run"),
        ("web/ingest.py", "opening.open_run"),
    }
