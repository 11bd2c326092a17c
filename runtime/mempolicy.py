"""``linux.memoryPolicy`` (runtime-spec 1.3): the NUMA policy of the container's processes.

Init sets it with set_mempolicy(2) just before execve; the policy survives execve and every
fork, so the whole container inherits it. ``create`` parses it first, so a bad object fails
before anything exists, with one line naming the field; what only the kernel can judge
(nodes it does not have, a flag this kernel lacks) fails create with the kernel's reason.
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.errors import SpecError
from ocirt.runtime.procattrs import parse_cpu_list

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

F = "linux.memoryPolicy"
MODES = {
    "MPOL_DEFAULT": syscalls.MPOL_DEFAULT,
    "MPOL_PREFERRED": syscalls.MPOL_PREFERRED,
    "MPOL_BIND": syscalls.MPOL_BIND,
    "MPOL_INTERLEAVE": syscalls.MPOL_INTERLEAVE,
    "MPOL_LOCAL": syscalls.MPOL_LOCAL,
    "MPOL_PREFERRED_MANY": syscalls.MPOL_PREFERRED_MANY,
    "MPOL_WEIGHTED_INTERLEAVE": syscalls.MPOL_WEIGHTED_INTERLEAVE,
}
FLAGS = {
    "MPOL_F_NUMA_BALANCING": syscalls.MPOL_F_NUMA_BALANCING,
    "MPOL_F_RELATIVE_NODES": syscalls.MPOL_F_RELATIVE_NODES,
    "MPOL_F_STATIC_NODES": syscalls.MPOL_F_STATIC_NODES,
}
# set_mempolicy(2)'s EINVAL cases, told apart here to name the field; the rest (nodes this
# host lacks, MPOL_F_NUMA_BALANCING with a mode that cannot use it) is the kernel's to judge
_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")


class Policy:
    """``mode``: the MPOL_* value with its MPOL_F_* flags or-ed in, as the syscall takes it."""

    __slots__ = ("mode", "nodes")

    def __init__(self, mode: int, nodes: set[int]) -> None:
        self.mode = mode
        self.nodes = nodes


def parse(raw: Any) -> Policy:
    if not isinstance(raw, dict):
        raise SpecError(F, "must be an object")
    name = raw.get("mode")
    if name is None:
        raise SpecError(f"{F}.mode", "is required")
    if not isinstance(name, str) or name not in MODES:
        raise SpecError(f"{F}.mode", f"unknown mode {name!r} (known: {', '.join(MODES)})")
    nodes = _nodes(raw.get("nodes"))
    if nodes and name in _NO_NODES:
        raise SpecError(f"{F}.nodes", f"{name} takes no nodes")
    if not nodes and name in _NEED_NODES:
        raise SpecError(f"{F}.nodes", f"{name} needs at least one node")
    return Policy(MODES[name] | _flags(raw.get("flags")), nodes)


def _nodes(value: Any) -> set[int]:
    if value is None or value == "":
        return set()
    if not isinstance(value, str):
        raise SpecError(f"{F}.nodes", "must be a string such as '0-3,7'")
    return parse_cpu_list(value, f"{F}.nodes", "node", syscalls.MAX_NODES)


def _flags(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, list):
        raise SpecError(f"{F}.flags", "must be a list")
    bits = 0
    for i, flag in enumerate(value):
        if not isinstance(flag, str) or flag not in FLAGS:
            raise SpecError(f"{F}.flags[{i}]", f"unknown flag {flag!r} (known: {', '.join(FLAGS)})")
        bits |= FLAGS[flag]
    both = syscalls.MPOL_F_STATIC_NODES | syscalls.MPOL_F_RELATIVE_NODES
    if bits & both == both:
        raise SpecError(f"{F}.flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    return bits


def apply(policy: Policy) -> None:
    try:
        syscalls.set_mempolicy(policy.mode, policy.nodes)
    except OSError as exc:
        hint = " (nodes this host or cpuset lacks, or a flag the mode cannot take)" if exc.errno == 22 else ""
        raise SpecError(F, f"set_mempolicy: {os.strerror(exc.errno or 0)}{hint}") from None
