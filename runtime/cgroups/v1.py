"""cgroup v1: one directory per mounted hierarchy, plus the unified one on a hybrid host
where it is needed (``needs_unified``).

``paths`` keys are controller names (co-mounted ones share a directory), ``systemd`` for
the ``name=systemd`` hierarchy and ``unified`` for the cgroup2 directory. Pausing uses the
v1 freezer; SIGKILL for all uses ``cgroup.kill`` in the unified directory when the
container has one, since it cannot miss a process that forks meanwhile.
"""

from __future__ import annotations

import errno
import os
import time

from ocirt.runtime.cgroups import devices
from ocirt.runtime.cgroups.base import (
    ROOT,
    Cgroup,
    makedirs,
    own_cgroups,
    place,
    procs_under,
    read_file,
    saved_frozen,
    write_file,
)
from ocirt.runtime.cgroups.v2 import freeze_dir, kill_dir, set_freeze
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONTROLLERS = frozenset(
    (
        "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
        "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
    )
)  # fmt: skip
UNIFIED = f"{ROOT}/unified"
FREEZE_TIMEOUT = 5.0
# Without CFQ the weights live in BFQ's files, which take the same values.
_BFQ = {"blkio.weight": "blkio.bfq.weight", "blkio.weight_device": "blkio.bfq.weight_device"}


class V1Cgroup(Cgroup):
    __slots__ = ()
    version = 1

    def create(self) -> None:
        for path in self.dirs():
            makedirs(path)
        if "cpuset" in self.paths:
            _fill_cpuset(self.paths["cpuset"])

    def apply(self, resources: dict[str, Any] | None) -> None:
        """Device rules apply even without resources: runc's default list always does."""
        from ocirt.runtime.cgroups.resources import v1_writes

        rules = devices.parse(resources)
        writes = v1_writes(resources or {})
        self._set_devices(rules)
        plan = list(zip(writes, writes.fields, strict=True))
        self._order_memory(plan)
        retry = []
        for (controller, name, value), field in plan:
            path = self._file(controller, name, value, field)
            if path is None:
                continue
            try:
                write_file(path, value)
            except OSError as exc:
                if name == "cpu.cfs_period_us" and exc.errno == errno.EINVAL:
                    retry.append((path, value, field))
                    continue
                raise _write_error(field, path, value, exc) from None
        for path, value, field in retry:
            try:
                write_file(path, value)
            except OSError as exc:
                raise _write_error(field, path, value, exc) from None

    def _set_devices(self, rules: list[devices.Rule]) -> None:
        """Without the v1 controller, the unified hierarchy of a hybrid host can still take
        the eBPF program of cgroup v2 (runc has no such fallback and refuses)."""
        if os.geteuid() != 0:
            return  # rootless (cgroups.rootless_view): rules need CAP_SYS_ADMIN; runc skips them
        path = self.paths.get("devices")
        if path is not None:
            devices.set_v1(path, rules)
        elif "unified" in self.paths:
            from ocirt.runtime.cgroups.bpf import set_v2

            set_v2(self.paths["unified"], rules)
        else:
            devices.require_open(rules, "the devices controller is not mounted on this host")

    def _file(self, controller: str, name: str, value: str, field: str) -> str | None:
        """The file to write, or None for an optional one this host lacks."""
        from ocirt.runtime.cgroups.resources import optional

        base = self.paths.get(controller)
        if base is None:
            if optional(name, value):
                return None
            raise OcirtError(f"{field}: the {controller} controller is not mounted on this host")
        path = os.path.join(base, name)
        if os.path.exists(path):
            return path
        if name in _BFQ and os.path.exists(os.path.join(base, _BFQ[name])):
            return os.path.join(base, _BFQ[name])
        if optional(name, value):
            return None
        raise OcirtError(f"{field}: this host has no {path}")

    def _order_memory(self, plan: list[tuple[tuple[str, str, str], str]]) -> None:
        """memory+swap may never drop below memory: raising both, memory+swap goes first.

        The rule is runc's, decided against the limit in force now.
        """
        names = [write[1] for write, _ in plan]
        if "memory.memsw.limit_in_bytes" not in names or "memory.limit_in_bytes" not in names:
            return
        limit = names.index("memory.limit_in_bytes")
        swap = names.index("memory.memsw.limit_in_bytes")
        new_swap = int(plan[swap][0][2])
        try:
            current = int(read_file(os.path.join(self.paths["memory"], "memory.limit_in_bytes")))
        except (KeyError, OSError):
            return
        if new_swap == -1 or current < new_swap:
            plan[limit], plan[swap] = plan[swap], plan[limit]

    def pids(self) -> list[int]:
        path = self.paths.get("freezer") or self.paths.get("unified") or self.dirs()[0]
        return procs_under(path)

    def freeze(self) -> None:
        path = self.paths.get("freezer")
        if path is None:
            freeze_dir(self._unified("pausing"))
            return
        deadline = time.monotonic() + FREEZE_TIMEOUT
        delay = 0.0005
        while _freezer(path, "FROZEN") != "FROZEN":
            if time.monotonic() > deadline:
                _freezer(path, "THAWED")
                raise OcirtError(f"freezing {path}: still FREEZING after {FREEZE_TIMEOUT:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def thaw(self) -> None:
        path = self.paths.get("freezer")
        if path is None:
            set_freeze(self._unified("resuming"), "0")
        else:
            _freezer(path, "THAWED")

    def frozen(self) -> bool:
        return saved_frozen(self.layout())

    def can_freeze(self) -> bool:
        return "freezer" in self.paths or "unified" in self.paths

    def kill_with_cgroup_kill(self) -> bool:
        """A task frozen by the v1 freezer dies only once thawed."""
        if "unified" not in self.paths or not kill_dir(self.paths["unified"]):
            return False
        if self.frozen():
            self.thaw()
        return True

    def _unified(self, action: str) -> str:
        if "unified" not in self.paths:
            raise OcirtError(f"{action} needs the freezer controller, not mounted on this host")
        return self.paths["unified"]

    def layout(self) -> dict[str, Any]:
        return {"version": 1, "paths": dict(self.paths)}

    def tracking_dir(self) -> str:
        """systemd's own hierarchy: ``unified`` on a hybrid host, else ``name=systemd``."""
        return self.paths.get("unified") or self.paths.get("systemd") or self.dirs()[0]


def open_v1(inner: str, systemd: bool) -> V1Cgroup:
    mounts = hierarchies()
    if not mounts:
        raise OcirtError(f"no cgroup hierarchy is mounted under {ROOT}")
    if not (systemd or needs_unified(mounts)):
        del mounts["unified"]
    own = {} if inner.startswith("/") else own_cgroups()
    paths = {}
    for key, (mountpoint, root) in mounts.items():
        paths[key] = place(mountpoint, root, inner, own.get("" if key == "unified" else key, "/"))
    return V1Cgroup(paths)


def needs_unified(mounts: dict[str, tuple[str, str]]) -> bool:
    """Whether a container joins the unified hierarchy of a hybrid host.

    Joining it is a threadgroup move, whose first one after a quiet spell waits an RCU
    grace period (about 13 ms of a 35 ms ``run`` here, measured), so it is joined only where
    it does what v1 cannot: device rules without the v1 devices controller (an eBPF
    program), pausing without the v1 freezer. systemd's scopes live there, and systemd
    moves the container in itself. What v1 controllers cannot do, it cannot either: the
    v1 driver refuses ``unified`` resources, and takes no limit from controllers enabled
    there. Without it, ``kill --all`` freezes and signals each member, as on pure v1.
    """
    return "unified" in mounts and not ("devices" in mounts and "freezer" in mounts)


def hierarchies() -> dict[str, tuple[str, str]]:
    """Hierarchy key -> (mount point, root of the mount) from /proc/self/mountinfo.

    Only mounts under /sys/fs/cgroup count, so a container's cgroupfs seen from the host is
    never mistaken for the host's; the first mount of a hierarchy wins, as in runc.
    """
    from ocirt.foundation.mountinfo import read_mountinfo

    found: dict[str, tuple[str, str]] = {}
    for info in read_mountinfo():
        if info.fstype == "cgroup2" and info.mountpoint == UNIFIED:
            found.setdefault("unified", (info.mountpoint, info.root))
        elif info.fstype == "cgroup" and info.mountpoint.startswith(f"{ROOT}/"):
            for option in info.super_options.split(","):
                if option in CONTROLLERS or option.startswith("name="):
                    found.setdefault(option.removeprefix("name="), (info.mountpoint, info.root))
    return found


def _freezer(path: str, state: str) -> str:
    """Ask for ``state``; return the state the freezer reports afterwards."""
    file = os.path.join(path, "freezer.state")
    try:
        write_file(file, state)
        return read_file(file).strip()
    except OSError as exc:
        raise OcirtError(f"writing {state} to {file}: {exc.strerror}") from None


def _fill_cpuset(path: str) -> None:
    """A new v1 cpuset has no CPUs or memory nodes and refuses members: copy the parent's.

    Filled top-down from the nearest ancestor that has both, as runc does.
    """
    empty = []
    while not (_cpuset(path, "cpus") and _cpuset(path, "mems")):
        parent = os.path.dirname(path)
        if not os.path.exists(os.path.join(parent, "cpuset.cpus")):
            break
        empty.append(path)
        path = parent
    for child in reversed(empty):
        for kind in ("cpus", "mems"):
            if not _cpuset(child, kind):
                value = _cpuset(os.path.dirname(child), kind)
                file = os.path.join(child, f"cpuset.{kind}")
                try:
                    write_file(file, value)
                except OSError as exc:
                    raise OcirtError(f"writing {value!r} to {file}: {exc.strerror}") from None


def _cpuset(path: str, kind: str) -> str:
    return read_file(os.path.join(path, f"cpuset.{kind}")).strip()


def _write_error(field: str, path: str, value: str, exc: OSError) -> OcirtError:
    text = f"{field}: writing {value!r} to {path}: {exc.strerror}"
    if exc.errno == errno.EBUSY and path.endswith("/memory.limit_in_bytes"):
        usage = read_file(os.path.join(os.path.dirname(path), "memory.usage_in_bytes")).strip()
        text += f" (the cgroup already uses {usage} bytes)"
    return OcirtError(text)
