"""Kernel attributes of a container process: ``process.scheduler``, ``process.ioPriority``,
``process.execCPUAffinity`` and ``linux.personality``.

``parse`` is pure and runs in the parent (``create``, or ``exec`` for its process), so a bad
value fails before anything exists; the children parse again from the same raw sections
(cheap, and nothing needs serialising) and apply. Scheduler and I/O priority go on before
the user switch, which may drop the CAP_SYS_NICE they need; the personality with them, so
hooks forked by init see the domain the program will.

``execCPUAffinity`` applies to ``exec`` only, as the runtime-spec says: ``initial`` is set by
the parent on the joining process before it enters the container's cgroup, ``final`` by the
process itself afterwards; without ``final``, every CPU the cgroup's cpuset allows (as runc),
since moving into a cgroup need not reset the affinity.
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.errors import SpecError
from ocirt.specs.config import object_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHED_POLICIES = {
    "SCHED_OTHER": syscalls.SCHED_OTHER,
    "SCHED_FIFO": syscalls.SCHED_FIFO,
    "SCHED_RR": syscalls.SCHED_RR,
    "SCHED_BATCH": syscalls.SCHED_BATCH,
    "SCHED_ISO": 4,  # reserved by Linux, never implemented: the kernel refuses it
    "SCHED_IDLE": syscalls.SCHED_IDLE,
    "SCHED_DEADLINE": syscalls.SCHED_DEADLINE,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": syscalls.SCHED_FLAG_RESET_ON_FORK,
    "SCHED_FLAG_RECLAIM": syscalls.SCHED_FLAG_RECLAIM,
    "SCHED_FLAG_DL_OVERRUN": syscalls.SCHED_FLAG_DL_OVERRUN,
    "SCHED_FLAG_KEEP_POLICY": syscalls.SCHED_FLAG_KEEP_POLICY,
    "SCHED_FLAG_KEEP_PARAMS": syscalls.SCHED_FLAG_KEEP_PARAMS,
    "SCHED_FLAG_UTIL_CLAMP_MIN": syscalls.SCHED_FLAG_UTIL_CLAMP_MIN,
    "SCHED_FLAG_UTIL_CLAMP_MAX": syscalls.SCHED_FLAG_UTIL_CLAMP_MAX,
}
IOPRIO_CLASSES = {
    "IOPRIO_CLASS_RT": syscalls.IOPRIO_CLASS_RT,
    "IOPRIO_CLASS_BE": syscalls.IOPRIO_CLASS_BE,
    "IOPRIO_CLASS_IDLE": syscalls.IOPRIO_CLASS_IDLE,
}
PERSONALITY_DOMAINS = {"LINUX": syscalls.PER_LINUX, "LINUX32": syscalls.PER_LINUX32}
PERSONALITY_FLAGS = {
    "UNAME26": syscalls.UNAME26,
    "ADDR_NO_RANDOMIZE": syscalls.ADDR_NO_RANDOMIZE,
    "FDPIC_FUNCPTRS": syscalls.FDPIC_FUNCPTRS,
    "MMAP_PAGE_ZERO": syscalls.MMAP_PAGE_ZERO,
    "ADDR_COMPAT_LAYOUT": syscalls.ADDR_COMPAT_LAYOUT,
    "READ_IMPLIES_EXEC": syscalls.READ_IMPLIES_EXEC,
    "ADDR_LIMIT_32BIT": syscalls.ADDR_LIMIT_32BIT,
    "SHORT_INODE": syscalls.SHORT_INODE,
    "WHOLE_SECONDS": syscalls.WHOLE_SECONDS,
    "STICKY_TIMEOUTS": syscalls.STICKY_TIMEOUTS,
    "ADDR_LIMIT_3GB": syscalls.ADDR_LIMIT_3GB,
}
_U64 = (1 << 64) - 1


class Scheduler:
    __slots__ = ("deadline", "flags", "nice", "period", "policy", "policy_name", "priority", "runtime")

    def __init__(self, raw: dict[str, Any], path: str) -> None:
        self.policy_name = _name(raw, "policy", f"{path}.policy", SCHED_POLICIES, required=True)
        self.policy = SCHED_POLICIES[self.policy_name]
        self.nice = _integer(raw, "nice", f"{path}.nice", -20, 19)
        self.priority = _integer(raw, "priority", f"{path}.priority", 0, 99)
        self.flags = _flags(raw, "flags", f"{path}.flags", SCHED_FLAGS)
        self.runtime = _integer(raw, "runtime", f"{path}.runtime", 0, _U64)
        self.deadline = _integer(raw, "deadline", f"{path}.deadline", 0, _U64)
        self.period = _integer(raw, "period", f"{path}.period", 0, _U64)
        realtime = self.policy in (syscalls.SCHED_FIFO, syscalls.SCHED_RR)
        if realtime and not self.priority:
            raise SpecError(f"{path}.priority", f"{self.policy_name} needs a priority from 1 to 99")
        if self.priority and not realtime:
            raise SpecError(f"{path}.priority", f"{self.policy_name} takes none (SCHED_FIFO and SCHED_RR do)")


class ProcAttrs:
    """What ``parse`` found; ``None`` fields are left as the runtime's."""

    __slots__ = ("affinity_final", "affinity_initial", "ioprio", "path", "personality", "scheduler")

    def __init__(self) -> None:
        self.path = "process"
        self.scheduler: Scheduler | None = None
        self.ioprio: int | None = None
        self.affinity_initial: set[int] | None = None
        self.affinity_final: set[int] | None = None
        self.personality: int | None = None

    def any(self) -> bool:
        return self.scheduler is not None or self.ioprio is not None or self.personality is not None


def parse(process: dict[str, Any], personality: Any, path: str = "process") -> ProcAttrs:
    """``process`` is a raw ``process`` object, ``personality`` the raw ``linux.personality``."""
    attrs = ProcAttrs()
    attrs.path = path
    sched = object_field(process, "scheduler", f"{path}.scheduler")
    if sched is not None:
        attrs.scheduler = Scheduler(sched, f"{path}.scheduler")
    io = object_field(process, "ioPriority", f"{path}.ioPriority")
    if io is not None:
        klass = IOPRIO_CLASSES[_name(io, "class", f"{path}.ioPriority.class", IOPRIO_CLASSES, required=True)]
        level = _integer(io, "priority", f"{path}.ioPriority.priority", 0, 7)
        attrs.ioprio = klass << syscalls.IOPRIO_CLASS_SHIFT | level
    aff = object_field(process, "execCPUAffinity", f"{path}.execCPUAffinity")
    if aff is not None:
        attrs.affinity_initial = _cpus(aff, "initial", f"{path}.execCPUAffinity.initial")
        attrs.affinity_final = _cpus(aff, "final", f"{path}.execCPUAffinity.final")
        if attrs.affinity_final is None and attrs.affinity_initial is not None:
            # the kernel narrows this to the cgroup's cpuset: ``initial`` must not outlive the move
            attrs.affinity_final = set(range(os.cpu_count() or 1))
    if personality is not None:
        if not isinstance(personality, dict):
            raise SpecError("linux.personality", "must be an object")
        domain = PERSONALITY_DOMAINS[
            _name(personality, "domain", "linux.personality.domain", PERSONALITY_DOMAINS, required=True)
        ]
        flags = _flags(personality, "flags", "linux.personality.flags", PERSONALITY_FLAGS)
        attrs.personality = domain | flags
    return attrs


def apply(attrs: ProcAttrs) -> None:
    """Scheduler, I/O priority and personality of this process, before the user switch."""
    sched = attrs.scheduler
    if sched is not None:
        try:
            syscalls.sched_setattr(
                0,
                sched.policy,
                sched.flags,
                sched.nice,
                sched.priority,
                sched.runtime,
                sched.deadline,
                sched.period,
            )
        except OSError as exc:
            raise SpecError(f"{attrs.path}.scheduler", f"{sched.policy_name}: {_why(exc)}") from None
    if attrs.ioprio is not None:
        try:
            syscalls.ioprio_set(0, attrs.ioprio)
        except OSError as exc:
            raise SpecError(f"{attrs.path}.ioPriority", _why(exc)) from None
    if attrs.personality is not None:
        try:
            syscalls.personality(attrs.personality)
        except OSError as exc:
            raise SpecError("linux.personality", _why(exc)) from None


def set_affinity(pid: int, cpus: set[int] | None, field: str) -> None:
    if cpus is None:
        return
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as exc:
        raise SpecError(field, f"cannot run on CPUs {format_cpus(cpus)}: {exc.strerror}") from None


def format_cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def parse_cpu_list(text: str, path: str, what: str = "CPU", limit: int = 8192) -> set[int]:
    """The kernel's list format: ``0-3,7`` (of CPUs, or of NUMA nodes)."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise SpecError(path, f"{text!r} is not a {what} list such as '0-3,7'")
        low, high = int(first), int(last) if dash else int(first)
        if high < low or high >= limit:
            raise SpecError(path, f"{text!r}: bad {what} range {part.strip()!r}")
        cpus.update(range(low, high + 1))
    return cpus


def _why(exc: OSError) -> str:
    hints = {1: " (needs CAP_SYS_NICE, or real-time runtime in the cgroup)", 22: " (the kernel refuses it)"}
    return f"{os.strerror(exc.errno or 0)}{hints.get(exc.errno or 0, '')}"


def _name(parent: dict[str, Any], key: str, path: str, table: dict[str, int], required: bool = False) -> str:
    value = parent.get(key)
    if value is None and required:
        raise SpecError(path, "is required")
    if value not in table:
        raise SpecError(path, f"unknown value {value!r} (known: {', '.join(table)})")
    return str(value)


def _integer(parent: dict[str, Any], key: str, path: str, low: int, high: int) -> int:
    value = parent.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(path, "must be an integer")
    if not low <= value <= high:
        raise SpecError(path, f"{value} is out of range ({low} to {high})")
    return value


def _flags(parent: dict[str, Any], key: str, path: str, table: dict[str, int]) -> int:
    value = parent.get(key) or []
    if not isinstance(value, list):
        raise SpecError(path, "must be a list")
    mask = 0
    for i, name in enumerate(value):
        if name not in table:
            raise SpecError(f"{path}[{i}]", f"unknown flag {name!r} (known: {', '.join(table)})")
        mask |= table[name]
    return mask


def _cpus(parent: dict[str, Any], key: str, path: str) -> set[int] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(path, "must be a string")
    return parse_cpu_list(value, path)
