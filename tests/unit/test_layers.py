"""The rooms of the package and who may import whom: each room imports only the rooms below it (docs/architecture.md).

Imports are counted at every level of the code, `if TYPE_CHECKING:` imports included: a type-only import still ties a
lower room to a higher one for a reader, and is one refactoring away from a runtime import.
"""

from __future__ import annotations

import ast

import pytest
from test_architecture import _absolute, _modules

# Each room and the rooms it may import besides itself. The order reads bottom to top.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "settings": {"base"},
    "storage": {"base", "settings"},
    "core": {"base", "settings", "storage"},
    "alerts": {"base", "settings", "storage", "core"},
    "monitor": {"base", "settings", "storage", "core", "alerts"},
    "exec": {"base", "settings", "storage", "core"},
    "web": {"base", "settings", "storage", "core", "alerts", "exec"},
    "cli": {"base", "settings", "storage", "core", "alerts", "monitor", "exec", "web"},
    # The package's face: `runtracker` re-exports the Python API; `testing` resets what the rooms hold.
    "top": {"base", "settings", "storage", "core", "alerts", "monitor", "exec", "web", "cli"},
}
# What web may use of exec: launching `runtracker exec` for the Start button, not exec's internals.
WEB_MAY_USE_OF_EXEC: set[str] = {"runtracker.exec.command"}


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "testing"):
        return "top"
    return parts[1] if len(parts) > 2 or parts[1] in ALLOWED else "top"


def _every_import() -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every runtracker module a module imports, type-only imports included."""
    modules = _modules()
    found = []
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(name, node)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            found.extend((name, t, node.lineno) for t in targets if t.startswith("runtracker") and t != name)
    return found


def test_every_module_lives_in_a_room():
    """No module sits loose at the top of the package besides its face (`__init__`, `__main__`, `testing`)."""
    loose = sorted(name for name in _modules() if _room(name) == "top"
                   and name not in ("runtracker", "runtracker.__main__", "runtracker.testing"))
    assert loose == []


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_a_room_imports_only_the_rooms_below_it(room):
    """base imports nothing above it, storage no core/web/exec/alerts, core no monitor/alerts/exec/web/cli..."""
    wrong = [f"{importer}:{line} imports {imported}" for importer, imported, line in _every_import()
             if _room(importer) == room and _room(imported) != room
             and _room(imported) not in ALLOWED[room] and _room(imported) != "top"]
    assert wrong == []


def test_web_uses_no_exec_internals():
    """web/ starts `runtracker exec` through its one public entry, and reads nothing else of exec/."""
    wrong = [f"{importer}:{line} imports {imported}" for importer, imported, line in _every_import()
             if _room(importer) == "web" and _room(imported) == "exec" and imported not in WEB_MAY_USE_OF_EXEC]
    assert wrong == []


def test_the_rules_above_catch_an_upward_import(tmp_path):
    """The room of a module is read from its dotted name, so an import of core from base is seen as upward."""
    assert _room("runtracker.base.redact") == "base" and _room("runtracker.core.state") == "core"
    assert "core" not in ALLOWED["base"] and "web" not in ALLOWED["storage"] and "exec" not in ALLOWED["storage"]
    assert _room("runtracker.settings.values") == "settings" and _room("runtracker") == "top"
