"""The typed config model against the JSON schemas on a generated corpus: a seeded generator
breaks one field of a full config at a time (removed, null, another type, a relative path,
an integer beyond 32 or 64 bits, ...) and both must reach the same verdict, except for the
deliberate differences listed below with their reasons. The schemas are the independent
expectation: they are written from runtime-spec's text, not from ``specs/config.py``.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ocirt.runtime import specgen
from ocirt.runtime.errors import SpecError
from ocirt.specs import schema
from ocirt.specs.config import Config
from test_schemas import BROKEN, full_config

# Kept raw by the model and checked by the runtime module that applies them, before anything
# of a container exists (cgroups/resources.py, seccomp.py, mempolicy.py, procattrs.py, lsm.py):
# moving those parsers into specs is the rest of this work.
RAW_SECTIONS = (
    "linux.resources",
    "linux.seccomp",
    "linux.memoryPolicy",
    "linux.personality",
    "linux.intelRdt",
    "linux.timeOffsets",
    "process.ioPriority",
    "process.scheduler",
    "process.execCPUAffinity",
)
RAW_BROKEN = {
    "bad seccomp action": "linux.seccomp",
    "memory limit as string": "linux.resources",
    "bad memory policy": "linux.memoryPolicy",
}

GONE = object()  # the mutation that removes the field
MUTATIONS: list[Any] = [GONE, None, "", "x", "/abs", -1, 0, 1, 2**32, 2**64, True, [], {}, ["x"], 1.5]

Edit = Callable[[dict[str, Any]], None]
# (reason, who accepts, predicate over the field path and the new value)
Difference = tuple[str, str, Callable[[str, Any], bool]]
DIFFERENCES: list[Difference] = [
    (
        "null is an absent field: Go's encoding/json (runc, containerd) reads it so",
        "typed",
        lambda path, value: value is None,
    ),
    (
        "beyond what the kernel field holds: a hook timeout past 64 bits, a device number "
        "outside dev_t's 12-bit major and 20-bit minor",
        "schema",
        lambda path, value: (
            (path.endswith(".timeout") and value == 2**64)
            or (path.endswith((".major", ".minor")) and value in (-1, 2**32, 2**64))
        ),
    ),
    (
        "runtime-spec's prose: hostname needs a uts namespace, mappings a user namespace and "
        "a new user namespace both mappings (the schema cannot say it)",
        "schema",
        lambda path, value: (
            (
                path in ("linux", "linux.namespaces", "linux.namespaces[]")
                and (value is GONE or value in ({}, []))
            )
            or (path.startswith(("linux.uidMappings", "linux.gidMappings")) and value in (GONE, []))
        ),
    ),
    (
        "a relative mount destination (deprecated by runtime-spec) is refused, as ocirt always has",
        "schema",
        lambda path, value: path == "mounts[].destination" and value == "x",
    ),
    (
        "process.args is optional only for Windows' commandLine; on Linux execve needs it",
        "schema",
        lambda path, value: path == "process.args" and value is GONE,
    ),
    (
        "setrlimit(2) refuses a soft limit above the hard one (EINVAL)",
        "schema",
        lambda path, value: (
            path in ("process.rlimits[].hard", "process.rlimits[].soft")
            and isinstance(value, int)
            and not isinstance(value, bool)
        ),
    ),
]


def _fields(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _fields(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _fields(item, (*path, i))


def _name(path: tuple[str | int, ...]) -> str:
    return "".join("[]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _mutated(base: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    parent: Any = doc  # a dict or a list along the path
    for key in path[:-1]:
        parent = parent[key]
    if value is GONE:
        parent.pop(path[-1])
    else:
        parent[path[-1]] = copy.deepcopy(value)
    return doc


def _typed_accepts(doc: dict[str, Any]) -> bool:
    try:
        Config(doc)
    except SpecError:
        return False
    return True


def _corpus(seed: int, count: int) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    base = full_config()
    fields = [p for p in _fields(base) if not _name(p).startswith(RAW_SECTIONS)]
    rng = random.Random(seed)
    for _ in range(count):
        path, value = rng.choice(fields), rng.choice(MUTATIONS)
        yield _name(path), value, _mutated(base, path, value)


SEEDS = (1, 2, 4)


@functools.cache
def _disagreements(seed: int) -> list[tuple[str, Any, str]]:
    """(field, new value, the side that accepts) wherever the two verdicts differ."""
    found = []
    for path, value, doc in _corpus(seed, 600):
        schema_ok, typed_ok = schema.validate_config(doc) == [], _typed_accepts(doc)
        if schema_ok != typed_ok:
            found.append((path, value, "schema" if schema_ok else "typed"))
    return found


def _reasons(path: str, value: Any, accepted_by: str) -> set[str]:
    return {reason for reason, who, applies in DIFFERENCES if who == accepted_by and applies(path, value)}


@pytest.mark.parametrize("seed", SEEDS)
def test_typed_model_agrees_with_the_schemas_on_a_generated_corpus(seed: int) -> None:
    unexplained = [
        f"{path} = {'(removed)' if value is GONE else repr(value)}: only the {who} side accepts it"
        for path, value, who in _disagreements(seed)
        if not _reasons(path, value, who)
    ]
    assert unexplained == []


@pytest.mark.parametrize(("name", "edit"), [c[:2] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_typed_model_refuses_what_the_schema_refuses(
    name: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """test_schemas.py's broken documents (uid 2^32, capability "KILL", ociVersion "1.3", a
    hook timeout of 0, ...): the typed model refuses each, naming the same field."""
    config = specgen.default_spec()
    edit(config)
    if name in RAW_BROKEN:
        assert RAW_BROKEN[name].startswith(RAW_SECTIONS)
        return
    with pytest.raises(SpecError) as err:
        Config(config)
    field = schema.validate_config(config)[0].split(": ", 1)[0]
    assert _same_field(str(err.value), field), (str(err.value), field)


def _same_field(message: str, field: str) -> bool:
    """The schema writes ``annotations["org.example"]``, the model ``annotations.org.example``;
    the model may name the enclosing object where a required member is missing."""
    named = message.split(": ", 2)[1]
    plain = field.replace('["', ".").replace('"]', "")
    return plain == named or plain.startswith(named + ".")


def test_every_difference_still_happens() -> None:
    """A listed difference that no longer occurs is stale: the seeds must still produce each."""
    seen = set().union(*(_reasons(*found) for seed in SEEDS for found in _disagreements(seed)))
    assert seen == {reason for reason, _, _ in DIFFERENCES}
