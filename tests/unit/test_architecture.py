"""The shape of the code, checked: no import cycle (type-only imports too), no private name used across modules, SQL
only in storage/, an open run changed only through its own methods, and no mutable module globals besides the
process state."""

from __future__ import annotations

import ast
import re
import sys
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


def _imports(modules: dict[str, ast.Module], *, type_only: bool = True) -> dict[str, set[str]]:
    """Every runtracker module each module imports, at any level of the code (function-level imports too);
    `type_only=False`: except under `if TYPE_CHECKING:`."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        skip = set() if type_only else _type_checking_lines(tree)
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
    """The import graph of runtracker's modules has no cycle, counting imports under `if TYPE_CHECKING:` too (a
    package's __init__ aside: it only re-exports)."""
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


MUTATORS = {"append", "extend", "insert", "pop", "popitem", "remove", "clear", "update", "setdefault", "add",
            "discard", "sort", "reverse"}


def _root(node: ast.expr) -> tuple[ast.expr, int]:
    """The expression an attribute / subscript chain starts from, and how many links it has."""
    links = 0
    while isinstance(node, ast.Attribute | ast.Subscript):
        node, links = node.value, links + 1
    return node, links


def _written(tree: ast.AST) -> list[tuple[ast.expr, ast.AST]]:
    """Every expression written to in `tree` (assigned, augmented, deleted, or given to a mutating method such
    as `.append`), with the statement or call that writes it."""
    found: list[tuple[ast.expr, ast.AST]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and getattr(node, "value", True) is not None:
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            found.append((node.func.value, node))
        while targets:
            target = targets.pop()
            if isinstance(target, ast.Tuple | ast.List):
                targets.extend(target.elts)
            elif isinstance(target, ast.Starred):
                targets.append(target.value)
            else:
                found.append((target, node))
    return found


def _open_run_class() -> ast.ClassDef:
    state = _modules()["runtracker.core.state"]
    return next(n for n in state.body if isinstance(n, ast.ClassDef) and n.name == "OpenRun")


def test_an_open_run_changes_only_through_its_own_methods():
    """No code outside OpenRun's class assigns, deletes or mutates (`.append`, `[k] =`, ...) an OpenRun attribute:
    `run.<slot> = ...`, `run.steps[i] = ...`, `run.log_rows.clear()` are OpenRun methods' work."""
    cls = _open_run_class()
    slots = set(ast.literal_eval(next(n.value for n in cls.body if isinstance(n, ast.Assign)
                                      and ast.unparse(n.targets[0]) == "__slots__")))
    # Only its containers are checked for mutating calls: `run.store.update(...)` would be the store's business.
    containers = {ast.unparse(n.target).removeprefix("self.") for n in ast.walk(cls)
                  if isinstance(n, ast.AnnAssign) and isinstance(n.value, ast.Dict | ast.List | ast.Set)}
    assert {"steps", "known_steps", "log_rows"} <= containers <= slots
    found = []
    for name, tree in _modules().items():
        inside = {id(n) for n in ast.walk(cls)} if name == "runtracker.core.state" else set()
        # `self.<slot>` in another class is that class's own attribute (RunTracker.pipeline), not an OpenRun's.
        other_classes = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c is not cls
                         for n in ast.walk(c)}
        for target, node in _written(tree):
            if id(node) in inside:
                continue
            chain = target
            while isinstance(chain, ast.Subscript):  # run.steps[i] = ...: the attribute written is `steps`
                chain = chain.value
            if not isinstance(chain, ast.Attribute) or chain.attr not in slots:
                continue
            if isinstance(node, ast.Call) and chain is target and chain.attr not in containers:
                continue
            base, _ = _root(chain)
            if isinstance(base, ast.Name) and base.id == "self" and id(node) in other_classes:
                continue
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert found == []


# Module-level state that is allowed, and why. Anything else bound at module level and then changed (assigned
# through, mutated, rebound from another module or by a `global` statement) is a new global: put it into the
# process state (core/state.py), or, if it is a pure memo cache, use functools.lru_cache / functools.cache.
ALLOWED_GLOBALS = {
    "runtracker.core.state.STATE": "the process state",
    "runtracker.base.guard.GUARD": "the guard's part of the process state (STATE.guard; base imports no core)",
    "runtracker.core.context._current": "a ContextVar: the current `with tracker.run()` per thread and task",
    "runtracker.web.present._zone": "a ContextVar: the display time zone of the page being made, per request",
    "runtracker.settings.state.SETTINGS": "the settings' part of the process state (STATE.settings; settings "
                                          "imports no core)",
    "runtracker.base.redact._current": "the redaction rules built from the settings (base imports no settings)",
}
# Made to hold state, whether or not this code mutates it in a way the test can see.
STATEFUL_CALLS = {"set", "dict", "list", "bytearray", "deque", "defaultdict", "OrderedDict", "Counter", "Lock",
                  "RLock", "local", "Event", "Condition", "Semaphore", "BoundedSemaphore", "ContextVar", "Queue",
                  "WeakValueDictionary", "WeakKeyDictionary", "WeakSet"}


def _module_bindings(tree: ast.Module) -> dict[str, ast.expr | None]:
    """The names a module binds at its top level (also inside a top-level `if` / `try`, never in `if
    TYPE_CHECKING:`), with the value each is bound to (None: bound by an import, def, class, for or with)."""
    found: dict[str, ast.expr | None] = {}
    body = list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, ast.If):
            if ast.unparse(node.test) not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                body.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            body.extend(node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body])
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(leaf, ast.Name):
                        found[leaf.id] = node.value
    return found


def _is_stateful(value: ast.expr | None) -> bool:
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) in STATEFUL_CALLS


def _changed_globals() -> set[str]:
    """Module-level names that are changed after import: mutated (`x.append`, `x[k] =`, `x.attr =`), rebound by a
    `global` statement or from another module (`module.x = ...`), or made to hold state (a lock, a ContextVar)."""
    modules = _modules()
    bindings = {name: _module_bindings(tree) for name, tree in modules.items()}
    changed: set[str] = set()
    for name, tree in modules.items():
        # Which local names stand for which runtracker module, or for which module-level name of another.
        module_alias: dict[str, str] = {}
        name_alias: dict[str, str] = {global_: f"{name}.{global_}" for global_ in bindings[name]}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _absolute(name, node)
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        module_alias[alias.asname or alias.name] = f"{base}.{alias.name}"
                    elif base in modules and alias.name in bindings[base]:
                        name_alias[alias.asname or alias.name] = f"{base}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        module_alias[alias.asname] = alias.name
            elif isinstance(node, ast.Global):
                changed.update(f"{name}.{global_}" for global_ in node.names)
        for target, _ in _written(tree):
            base, links = _root(target)
            if isinstance(base, ast.Name) and base.id in name_alias and links:
                changed.add(name_alias[base.id])  # x.attr = / x[k] = / x.append(...)
            chain = target
            while isinstance(chain, ast.Attribute | ast.Subscript) and not (
                    isinstance(chain, ast.Attribute) and isinstance(chain.value, ast.Name)):
                chain = chain.value
            if (isinstance(chain, ast.Attribute) and isinstance(chain.value, ast.Name)
                    and chain.value.id in module_alias and chain.attr in bindings[module_alias[chain.value.id]]):
                changed.add(f"{module_alias[chain.value.id]}.{chain.attr}")  # module.x = / module.x.append(...)
    for name, names in bindings.items():
        changed.update(f"{name}.{global_}" for global_, value in names.items() if _is_stateful(value))
    return changed


def test_no_mutable_module_globals_outside_the_process_state():
    """The only module-level names changed after import are those of ALLOWED_GLOBALS: the process state, and
    named exceptions; pure memo caches are functools caches."""
    assert sorted(_changed_globals() - set(ALLOWED_GLOBALS)) == []


def test_the_globals_check_finds_each_kind_of_module_global(tmp_path, monkeypatch):
    """The check above is not blind: a set mutated, a `global` rebinding, a module attribute rebound from another
    module, a lock, and an object whose attribute is assigned are each found; constants are not."""
    package = tmp_path / "runtracker"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "import threading\n"
        "SEEN = set()\nCONSTANT = {'k': 1}\nLIMITS = [1, 2]\nFLAG = None\nHOLDER = object()\n"
        "LOCK = threading.Lock()\n_memo = None\n"
        "def f(x):\n    global _memo\n    _memo = x\n    SEEN.add(x)\n    HOLDER.attr = x\n"
        "    return CONSTANT['k'] + LIMITS[0]\n")
    (package / "b.py").write_text("from . import a\n\ndef g():\n    a.FLAG = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert sorted(_changed_globals()) == [f"runtracker.a.{name}" for name in ("FLAG", "HOLDER", "LOCK", "SEEN",
                                                                             "_memo")]
