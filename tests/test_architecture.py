"""The import contract of docs/architecture.md, checked over the source tree's import graph
(read with ``ast``): layers depend one way, the conformance suite on no part of ocirt's
runtime, no module cycles, no private name used across modules."""

from __future__ import annotations

import pytest
from support import imports

# each layer may import itself and the layers to its right:
# manager -> shim -> runtime -> specs -> foundation
LAYERS = ("manager", "shim", "runtime", "specs", "foundation")
# runtime-agnostic: it drives any runtime by its command line, never by ocirt's code
ALLOWED = {part: set(LAYERS[i:]) for i, part in enumerate(LAYERS)}
# busybox bundles for tests, bench, demo and the suite: no runtime code either
ALLOWED["testing"] = {"testing", "specs", "foundation"}
ALLOWED["conformance"] = {"conformance", "testing", "specs", "foundation"}

# Breaches still to fix, listed so the contract can run before they are; each fixed one must
# leave the list (a stale entry fails as a new breach does). Empty since every one is fixed.
KNOWN: set[str] = set()


@pytest.fixture(scope="module")
def graph() -> dict[str, imports.Module]:
    return imports.modules()


def _part(name: str) -> str:
    return name.split(".")[1]


def _compare(kind: str, found: set[str], what: str) -> None:
    known = {k for k in KNOWN if k.startswith(kind)}
    assert sorted(found - known) == [], what
    assert sorted(known - found) == [], "fixed: drop these from KNOWN"


def test_layers_depend_one_way(graph: dict[str, imports.Module]) -> None:
    wrong = {
        f"layer: {m.name} -> {target}"
        for m in graph.values()
        for target in m.imports
        if _part(target) not in ALLOWED[_part(m.name)]
    }
    _compare("layer:", wrong, "a layer imports one to its left (or the suite ocirt's code)")


def test_no_import_cycles(graph: dict[str, imports.Module]) -> None:
    """Imports under ``if TYPE_CHECKING:`` never run and are left out: a signature may name
    the type of the module that calls it. Imports inside functions do run and count."""
    found = {"cycle: " + " ".join(c) for c in imports.cycles({m.name: m.runs for m in graph.values()})}
    _compare("cycle:", found, "modules import each other")


def test_no_private_names_across_modules(graph: dict[str, imports.Module]) -> None:
    found = {f"private: {m.name} uses {use.partition(': ')[2]}" for m in graph.values() for use in m.private}
    _compare("private:", found, "a private name (_x) is used outside its module")


def test_the_graph_sees_the_tree(graph: dict[str, imports.Module]) -> None:
    """The checks above mean something only if the reader finds the imports: a few edges
    every reader of the code can confirm."""
    assert "ocirt.foundation.fastjson" in graph["ocirt.runtime.state"].imports
    assert "ocirt.runtime.errors" in graph["ocirt.runtime.cli"].imports
    assert "ocirt.shim.client" in graph["ocirt.manager.containers.start"].imports
    assert len(graph) > 150
