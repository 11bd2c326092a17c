"""``--systemd-cgroup``: the container's cgroup is a transient scope unit of systemd's.

``linux.cgroupsPath`` is ``slice:prefix:name``, as for runc; an empty path is
``system.slice:ocirt:<id>``. As runc's systemd driver does, ocirt asks systemd's manager
(over D-Bus, see ``dbus``) to start the scope ``<prefix>-<name>.scope`` in the slice with
the container's first process, ``Delegate=yes`` and accounting on, waits until the process
is in it, and then writes the limits itself through cgroupfs, as delegation allows. On
cgroup v2 the limits systemd manages itself go into the unit too (``MemoryMax``,
``TasksMax``, ``CPUWeight``...: runc's list), or a ``daemon-reload`` would write systemd's
defaults over them. Its
cgroup is ``<manager's cgroup>/<slice path>/<unit>``, with the slice expanded as systemd
does (``a-b.slice`` is ``a.slice/a-b.slice``). ``delete`` stops the unit and clears a
failed state, so the name can be used again.

A host without a running systemd (no ``/run/systemd/system``) gets a one-line error.
"""

from __future__ import annotations

import os
import time

from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.cgroups.dbus import Connection

DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "ocirt"
PRIVATE_SOCKET = "/run/systemd/private"
MANAGER = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
START_TIMEOUT = 10.0
FLAG = "--systemd-cgroup"
INFINITY = (1 << 64) - 1  # systemd's "infinity" for a uint64 property
LIMITS = {
    "memory.max": "MemoryMax",
    "memory.low": "MemoryLow",
    "memory.swap.max": "MemorySwapMax",
    "pids.max": "TasksMax",
    "cpu.weight": "CPUWeight",
}


class Unit:
    """The scope to start: its name, its slice, and its cgroup path below the manager's."""

    __slots__ = ("name", "path", "slice")

    def __init__(self, name: str, slice_name: str, path: str) -> None:
        self.name = name
        self.slice = slice_name
        self.path = path


def unit_for(cgroups_path: str, container_id: str) -> Unit:
    """The unit for ``slice:prefix:name`` (checked, nothing asked of systemd yet)."""
    if not cgroups_path:
        cgroups_path = f"{DEFAULT_SLICE}:{DEFAULT_PREFIX}:{container_id}"
    parts = cgroups_path.split(":")
    if len(parts) != 3 or not parts[2] or "/" in parts[1] + parts[2]:
        raise SpecError(
            "linux.cgroupsPath",
            f"expected slice:prefix:name for {FLAG}, got {cgroups_path!r}",
        )
    slice_name, prefix, name = parts
    if name.endswith(".slice"):
        raise SpecError("linux.cgroupsPath", f"{FLAG}: the container's unit must be a scope, not {name!r}")
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    parent = expand_slice(slice_name or DEFAULT_SLICE)
    return Unit(unit, slice_name or DEFAULT_SLICE, f"{parent.rstrip('/')}/{unit}")


def systemd_path(cgroups_path: str, container_id: str) -> str:
    """The cgroup path of the container's unit below systemd's manager."""
    return unit_for(cgroups_path, container_id).path


def expand_slice(name: str) -> str:
    """``a-b-c.slice`` -> ``/a.slice/a-b.slice/a-b-c.slice``; ``-.slice`` is the root."""
    if name == "-.slice":
        return "/"
    stem = name.removesuffix(".slice")
    parts = stem.split("-")
    if stem == name or "/" in name or not all(parts):
        raise SpecError("linux.cgroupsPath", f"invalid systemd slice name {name!r}")
    return "".join(f"/{'-'.join(parts[: i + 1])}.slice" for i in range(len(parts)))


def connect() -> Connection:
    from ocirt.runtime.cgroups.dbus import Connection

    if not os.path.isdir("/run/systemd/system"):
        raise OcirtError(f"{FLAG}: systemd is not running on this host (no /run/systemd/system)")
    return Connection(PRIVATE_SOCKET)


def locate(cgroups_path: str, container_id: str) -> str:
    """The unit's cgroup path: below the cgroup of systemd's manager (``/`` for the
    system's, a user manager's own otherwise), as runc asks. A unit of that name that
    systemd already knows is refused here, before anything is made: its cgroup is someone
    else's, and cleaning up after a failed start would kill what runs in it."""
    from ocirt.runtime.cgroups.dbus import DBusError

    unit = unit_for(cgroups_path, container_id)
    conn = connect()
    try:
        reply = conn.call(
            MANAGER, "org.freedesktop.DBus.Properties", "Get", "ss", (MANAGER_IFACE, "ControlGroup")
        )
        root = str(reply.value("v")).rstrip("/")
        try:
            conn.call(MANAGER, MANAGER_IFACE, "GetUnit", "s", (unit.name,))
        except DBusError as exc:
            if exc.name != "org.freedesktop.systemd1.NoSuchUnit":
                raise
        else:
            raise OcirtError(f"{FLAG}: systemd already has a unit {unit.name}")
    finally:
        conn.close()
    return root + unit.path


def start(cgroup: Cgroup, cgroups_path: str, container_id: str, pid: int, resources: dict[str, Any]) -> None:
    """Start the scope with ``pid`` in it; return once systemd has moved it there. Only
    then is ``cgroup.unit`` set, so a failure never stops a unit of the same name that
    someone else started."""
    unit = unit_for(cgroups_path, container_id)
    properties = [
        ("Description", ("s", f"ocirt container {container_id}")),
        ("Slice", ("s", unit.slice)),
        ("PIDs", ("au", [pid])),
        ("Delegate", ("b", True)),
        ("DefaultDependencies", ("b", False)),
        *((f"{kind}Accounting", ("b", True)) for kind in ("CPU", "Memory", "IO", "Tasks")),
    ]
    if cgroup.version == 2:
        properties += limit_properties(resources)
    conn = connect()
    try:
        conn.call(
            MANAGER,
            MANAGER_IFACE,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            (unit.name, "replace", properties, []),
        )
    finally:
        conn.close()
    cgroup.unit = unit.name
    _wait_for(cgroup.tracking_dir(), pid, unit.name)


def set_limits(name: str, resources: dict[str, Any]) -> None:
    """``ocirt update``: the unit's limit properties follow the new limits (SetUnitProperties,
    at runtime: they last until the unit goes)."""
    properties = limit_properties(resources)
    if not properties:
        return
    conn = connect()
    try:
        conn.call(MANAGER, MANAGER_IFACE, "SetUnitProperties", "sba(sv)", (name, True, properties))
    finally:
        conn.close()


def limit_properties(resources: dict[str, Any]) -> list[tuple[str, tuple[str, Any]]]:
    """The unit properties for what ``v2_writes`` would write, converted as runc does: "max"
    is infinity, a CPU quota is per second rounded up to systemd's 10 ms steps."""
    from ocirt.runtime.cgroups.resources import v2_writes

    props: list[tuple[str, tuple[str, Any]]] = []
    for file, value in v2_writes(resources):
        if file in LIMITS and value != "0":  # TasksMax=0 is no limit to systemd; cgroupfs writes it
            props.append((LIMITS[file], ("t", INFINITY if value == "max" else int(value))))
        elif file == "cpu.max":
            quota, period = value.split()
            per_sec = (
                INFINITY if quota == "max" else -(-int(quota) * 1_000_000 // int(period) // 10_000) * 10_000
            )
            props += [("CPUQuotaPerSecUSec", ("t", per_sec)), ("CPUQuotaPeriodUSec", ("t", int(period)))]
        elif file in ("cpuset.cpus", "cpuset.mems"):
            name = "AllowedCPUs" if file == "cpuset.cpus" else "AllowedMemoryNodes"
            props.append((name, ("ay", _mask(value))))
    return props


def _mask(text: str) -> list[int]:
    """``0-2,9`` as systemd's CPU set: bytes, CPU ``8 * i + j`` at bit ``j`` of byte ``i``."""
    from ocirt.runtime.procattrs import parse_cpu_list

    members = parse_cpu_list(text, "linux.resources.cpu")
    mask = [0] * (max(members) // 8 + 1)
    for n in members:
        mask[n // 8] |= 1 << (n % 8)
    return mask


def _wait_for(path: str, pid: int, name: str) -> None:
    """The start job runs after the call returns; its end shows as ``pid`` in the scope."""
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.001
    while True:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                if str(pid) in f.read().split():
                    return
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise OcirtError(
                f"{FLAG}: systemd did not put pid {pid} into {name} ({path}) within {START_TIMEOUT:g}s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def stop(name: str) -> None:
    """Stop the unit and forget a failed state; a unit already gone is what we want."""
    from ocirt.runtime.cgroups.dbus import DBusError

    conn = connect()
    try:
        for member, sig, args in (("StopUnit", "ss", (name, "replace")), ("ResetFailedUnit", "s", (name,))):
            try:
                conn.call(MANAGER, MANAGER_IFACE, member, sig, args)
            except DBusError as exc:
                if exc.name not in (
                    "org.freedesktop.systemd1.NoSuchUnit",
                    "org.freedesktop.DBus.Error.InvalidArgs",
                ):
                    raise
    finally:
        conn.close()
