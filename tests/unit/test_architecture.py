"""The shape of the code, checked: no import cycle, no private name used across modules, SQL only in storage/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import runtracker

PACKAGE = Path(runtracker.__file__).resolve().parent
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))\b",
                 re.IGNORECASE | re.DOTALL)


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("runtracker", *parts)).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def _is_package(name: str) -> bool:
    return (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").exists() or name == "runtracker"


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Every runtracker module each module imports, at any level of the code (function-level imports too),
    except under `if TYPE_CHECKING:`."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(name, node)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def test_no_module_imports_one_that_imports_it_back():
    """The import graph of runtracker's modules has no cycle (a package's __init__ aside: it only re-exports)."""
    graph = {k: {m for m in v if not _is_package(m) or m == k} for k, v in _imports(_modules()).items()}
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in path and len(path) < len(graph):
                    stack.append((nxt, [*path, nxt]))
    assert cycles == []


def test_no_private_name_is_used_outside_its_module():
    """No `from runtracker.x import _name` and no `x._name` on another runtracker module."""
    modules = _modules()
    found = []
    for name, tree in modules.items():
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _absolute(name, node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in modules:
                        aliases[alias.asname or alias.name] = full
                    elif base in modules and alias.name.startswith("_"):
                        found.append(f"{name}: from {base} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{name}: {node.value.id}.{node.attr}")
    assert found == []


def test_sql_and_dialect_checks_live_in_storage_only():
    """No SQL text and no look at a store's dialect outside runtracker.storage."""
    found = []
    for name, tree in _modules().items():
        if name.startswith("runtracker.storage"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                if node.value.lstrip().startswith(('"""', "'")) or "\n" in node.value and not SQL.match(
                        node.value.strip()):
                    continue  # prose in a docstring that happens to read like SQL
                found.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
            if isinstance(node, ast.Attribute) and node.attr == "dialect":
                found.append(f"{name}:{node.lineno}: .dialect")
    assert found == []


def test_web_uses_no_exec_internals():
    """web/ starts `runtracker exec` as a command and imports only its public command line (exec.command),
    never the wrapper's machinery."""
    allowed = "runtracker.exec.command"
    found = sorted(f"{name} -> {target}" for name, targets in _imports(_modules()).items()
                   if name.startswith("runtracker.web")
                   for target in targets if target.startswith("runtracker.exec") and target != allowed)
    assert found == []
