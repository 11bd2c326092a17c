"""The import graph of ocirt's source tree, read with ``ast`` (nothing is imported), for the
architecture contract in tests/test_architecture.py."""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# folder -> import name, as pyproject.toml's package-dir maps them
PARTS = ("foundation", "specs", "runtime", "shim", "manager", "conformance", "testing")


@dataclass
class Module:
    name: str
    path: str
    package: str
    imports: set[str] = field(default_factory=set)  # ocirt modules this one imports
    runs: set[str] = field(default_factory=set)  # those imported when it runs (not for typing only)
    private: list[str] = field(default_factory=list)  # "line: module._name" used from elsewhere


def modules(root: str = ROOT) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for part in PARTS:
        for folder, _, files in os.walk(os.path.join(root, part)):
            for file in files:
                if file.endswith(".py"):
                    path = os.path.join(folder, file)
                    rel = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
                    name = "ocirt." + ".".join(rel)
                    if rel[-1] == "__init__":
                        name = name.removesuffix(".__init__")
                        found[name] = Module(name, path, name)
                    else:
                        found[name] = Module(name, path, name.rpartition(".")[0])
    for module in found.values():
        _read(module, found)
    return found


def _owner(name: str, known: dict[str, Module]) -> str | None:
    """The ocirt module that defines ``name`` (a module, or a name inside one)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _read(module: Module, known: dict[str, Module]) -> None:
    with open(module.path) as f:
        tree = ast.parse(f.read(), module.path)
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    aliases: dict[str, str] = {}  # local name -> ocirt module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            targets = _targets(module, node, known, aliases)
            module.imports |= targets
            if id(node) not in typing_only:
                module.runs |= targets
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = aliases.get(node.value.id)
            if target and target != module.name:
                module.private.append(f"{node.lineno}: {target}.{node.attr}")
    module.imports.discard(module.name)
    module.runs.discard(module.name)


def _targets(
    module: Module, node: ast.Import | ast.ImportFrom, known: dict[str, Module], aliases: dict[str, str]
) -> set[str]:
    """The ocirt modules one import statement loads; notes the names it binds to modules and
    any private name it takes from another module."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            target = _owner(alias.name, known)
            if target:
                found.add(target)
                if alias.asname:
                    aliases[alias.asname] = alias.name
        return found
    base = _absolute(module, node)
    for alias in node.names:
        full = f"{base}.{alias.name}"
        if full in known:
            found.add(full)
            aliases[alias.asname or alias.name] = full
            continue
        target = _owner(base, known)
        if target is None:
            continue
        found.add(target)
        if _private(alias.name) and target != module.name:
            module.private.append(f"{node.lineno}: {target}.{alias.name}")
    return found


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
