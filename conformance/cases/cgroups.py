"""config-linux.md Control groups: cgroupsPath and linux.resources, read back from the host's
cgroup files of the created container (v1 controllers, or the v2 unified hierarchy)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, SHOULD, Case, Fail, NotApplicable, add, expect
from ocirt.foundation.mountinfo import read_mountinfo

CL = "config-linux.md"
V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _hierarchies() -> dict[str, str]:
    """Controller name (or "" for cgroup2) -> mount point."""
    found: dict[str, str] = {}
    for info in read_mountinfo():
        if info.fstype == "cgroup2":
            found.setdefault("", info.mountpoint)
        elif info.fstype == "cgroup":
            for opt in info.super_options.split(","):
                found.setdefault(opt, info.mountpoint)
    return found


def cgroup_dir(pid: int, controller: str) -> str:
    """Where ``pid`` sits in the hierarchy of ``controller`` ("" for the v2 hierarchy)."""
    mounts = _hierarchies()
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if (controller == "" and names == "") or controller in names.split(","):
                return mounts[controller] + path
    raise NotApplicable(f"no {controller or 'cgroup2'} hierarchy on this host")


def read(pid: int, controller: str, name: str) -> str:
    path = os.path.join(cgroup_dir(pid, controller), name)
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        raise NotApplicable(f"{controller or 'cgroup2'} has no {name} on this kernel") from None


@dataclass(frozen=True)
class Knob:
    """One resource setting and where each cgroup version shows it (None: no such knob)."""

    case_id: str
    heading: str
    resources: dict[str, Any]
    v1: tuple[str, str, str] | None
    v2: tuple[str, str] | None
    doc: str
    level: str = MUST


def _block_device() -> str | None:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram", "nbd")):
            with open(f"/sys/block/{name}/dev") as f:
                return f.read().strip()
    return None


MIB = 1 << 20
KNOBS = [
    Knob(
        "cgroups.memory.limit",
        "Memory",
        {"memory": {"limit": 64 * MIB}},
        ("memory", "memory.limit_in_bytes", str(64 * MIB)),
        ("memory.max", str(64 * MIB)),
        "memory.limit: the memory usage limit in bytes.",
    ),
    Knob(
        "cgroups.memory.reservation",
        "Memory",
        {"memory": {"reservation": 32 * MIB}},
        ("memory", "memory.soft_limit_in_bytes", str(32 * MIB)),
        ("memory.low", str(32 * MIB)),
        "memory.reservation: the soft limit (memory.low on v2).",
    ),
    Knob(
        "cgroups.memory.swap",
        "Memory",
        {"memory": {"limit": 64 * MIB, "swap": 128 * MIB}},
        ("memory", "memory.memsw.limit_in_bytes", str(128 * MIB)),
        ("memory.swap.max", str(64 * MIB)),
        "memory.swap: memory plus swap limit (v2 takes the swap part alone).",
    ),
    Knob(
        "cgroups.memory.swappiness",
        "Memory",
        {"memory": {"swappiness": 10}},
        ("memory", "memory.swappiness", "10"),
        None,
        "memory.swappiness: the v1 swappiness knob.",
    ),
    Knob(
        "cgroups.memory.disable-oom-killer",
        "Memory",
        {"memory": {"disableOOMKiller": True}},
        ("memory", "memory.oom_control", "oom_kill_disable 1"),
        None,
        "memory.disableOOMKiller: the v1 OOM killer switch (first line of memory.oom_control).",
    ),
    Knob(
        "cgroups.cpu.shares",
        "CPU",
        {"cpu": {"shares": 512}},
        ("cpu", "cpu.shares", "512"),
        ("cpu.weight", "20"),
        "cpu.shares: relative CPU share (v2 weight 1 + (shares-2)*9999/262142).",
    ),
    Knob(
        "cgroups.cpu.quota",
        "CPU",
        {"cpu": {"quota": 50000, "period": 100000}},
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu.max", "50000 100000"),
        "cpu.quota and cpu.period: the CFS bandwidth limit.",
    ),
    Knob(
        "cgroups.cpu.period",
        "CPU",
        {"cpu": {"quota": 20000, "period": 50000}},
        ("cpu", "cpu.cfs_period_us", "50000"),
        ("cpu.max", "20000 50000"),
        "cpu.period: the CFS period.",
    ),
    Knob(
        "cgroups.cpuset.cpus",
        "CPU",
        {"cpu": {"cpus": "0", "mems": "0"}},
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset.cpus", "0"),
        "cpu.cpus: the CPUs the container may use.",
    ),
    Knob(
        "cgroups.cpuset.mems",
        "CPU",
        {"cpu": {"cpus": "0", "mems": "0"}},
        ("cpuset", "cpuset.mems", "0"),
        ("cpuset.mems", "0"),
        "cpu.mems: the memory nodes it may use.",
    ),
    Knob(
        "cgroups.pids.limit",
        "PIDs",
        {"pids": {"limit": 123}},
        ("pids", "pids.max", "123"),
        ("pids.max", "123"),
        "pids.limit: the maximum number of tasks.",
    ),
    Knob(
        "cgroups.pids.limit-zero",
        "PIDs",
        {"pids": {"limit": 0}},
        ("pids", "pids.max", "0"),
        ("pids.max", "0"),
        """pids.limit 0 is a limit of zero tasks, not "no limit" (runtime-spec 1.3,
        opencontainers/runtime-spec#1279); the runtime's own fork of the container process
        comes first. runc 1.1.5 treats 0 as unset and leaves the parent's limit.""",
    ),
    Knob(
        "cgroups.hugetlb.limit",
        "Huge page limits",
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MIB}]},
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", str(4 * MIB)),
        ("hugetlb.2MB.max", str(4 * MIB)),
        "hugepageLimits: the limit for each huge page size.",
    ),
    Knob(
        "cgroups.blkio.weight",
        "Block IO",
        {"blockIO": {"weight": 300}},
        ("blkio", "blkio.weight", "300"),
        ("io.weight", "default 300"),
        "blockIO.weight: the per-cgroup IO weight (needs the CFQ or BFQ scheduler's file).",
        SHOULD,
    ),
    Knob(
        "cgroups.network.class-id",
        "Network",
        {"network": {"classID": 1048577}},
        ("net_cls", "net_cls.classid", "1048577"),
        None,
        "network.classID: the net_cls class id.",
        SHOULD,
    ),
]


def _throttle(resources: dict[str, Any], dev: str) -> None:
    major, minor = dev.split(":")
    resources["blockIO"] = {
        "throttleReadBpsDevice": [{"major": int(major), "minor": int(minor), "rate": MIB}]
    }


def _host_lacks(where: tuple[str, ...]) -> str | None:
    """Checked before create: a runtime cannot be blamed for a file the kernel does not have."""
    mounts = _hierarchies()
    if V2:
        top = mounts.get("", "/sys/fs/cgroup")
        with open(os.path.join(top, "cgroup.controllers")) as f:
            controllers = f.read().split()
        name = where[0]
        if name.split(".")[0] not in controllers and name.split(".")[0] != "cgroup":
            return f"the {name.split('.')[0]} controller is not enabled"
        return None
    controller, name = where[0], where[1]
    if controller not in mounts:
        return f"the {controller} controller is not mounted"
    if not _has_file(mounts[controller], name):
        return f"{controller} has no {name} on this kernel"
    return None


@functools.cache
def _has_file(top: str, name: str) -> bool:
    """Some files exist only below the root cgroup: a scratch child shows them."""
    if os.path.exists(os.path.join(top, name)):
        return True
    probe = os.path.join(top, f"ocirt-conformance-probe-{os.getpid()}")
    os.makedirs(probe, exist_ok=True)
    try:
        return os.path.exists(os.path.join(probe, name))
    finally:
        os.rmdir(probe)


def _knob_case(knob: Knob) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        where = knob.v2 if V2 else knob.v1
        if where is None:
            raise NotApplicable(f"cgroup v{2 if V2 else 1} has no such knob")
        if reason := _host_lacks(where):
            raise NotApplicable(reason)
        cfg = ctx.config(["sleep", "300"])
        cfg["linux"]["resources"] = knob.resources
        cid, _ = ctx.create(cfg)
        pid = ctx.pid(cid)
        controller, name, want = ("", *where) if V2 else where
        text = read(pid, controller, name)
        got = text.splitlines()[0] if text else ""
        if name == "io.weight" and not got:
            raise NotApplicable("io.weight missing")
        expect(name, got, want)

    check.__doc__ = knob.doc
    return check


for _knob in KNOBS:
    add(Case(_knob.case_id, CL, _knob.heading, _knob.level, _knob_case(_knob)))


def _throttle_case(ctx: Context) -> None:
    dev = _block_device()
    if dev is None:
        raise NotApplicable("no block device on this host")
    cfg = ctx.config(["sleep", "300"])
    cfg["linux"]["resources"] = {}
    _throttle(cfg["linux"]["resources"], dev)
    cid, _ = ctx.create(cfg)
    pid = ctx.pid(cid)
    if V2:
        got = read(pid, "", "io.max")
        expect("io.max", f"{dev} rbps={MIB}" in got, True)
    else:
        expect(
            "blkio.throttle.read_bps_device",
            read(pid, "blkio", "blkio.throttle.read_bps_device"),
            f"{dev} {MIB}",
        )


_throttle_case.__doc__ = "blockIO.throttleReadBpsDevice: the read bandwidth limit of one device."
add(Case("cgroups.blkio.throttle-read-bps", CL, "Block IO", MUST, _throttle_case))


def _path_case(ctx: Context) -> None:
    cid, _ = ctx.create(ctx.config(["sleep", "300"]))
    pid = ctx.pid(cid)
    want = f"/{ctx.h.cgroup_parent}/{cid}"
    controller = "" if V2 else "memory"
    where = cgroup_dir(pid, controller)
    expect_end = where.endswith(want)
    if not expect_end:
        raise Fail("cgroup of the container process", where, f"...{want}")


_path_case.__doc__ = """An absolute cgroupsPath is taken relative to the cgroups mount point, and
the runtime MUST attach the container to that place."""
add(Case("cgroups.path", CL, "Cgroups Path", MUST, _path_case))


def _unified_case(ctx: Context) -> None:
    if not V2:
        raise NotApplicable("cgroup v1 host: linux.resources.unified needs the v2 hierarchy with controllers")
    cfg = ctx.config(["sleep", "300"], "1.0.2")
    cfg["linux"]["resources"] = {"unified": {"pids.max": "42"}}
    cid, _ = ctx.create(cfg)
    expect("pids.max", read(ctx.pid(cid), "", "pids.max"), "42")


_unified_case.__doc__ = "unified: cgroup v2 files written as given."
add(Case("cgroups.unified", CL, "Unified", MUST, _unified_case))


def _applied_before_start(ctx: Context) -> None:
    cfg = ctx.config(["sleep", "300"])
    cfg["linux"]["resources"] = {"pids": {"limit": 77}}
    cid, _ = ctx.create(cfg)
    pid = ctx.pid(cid)
    got = read(pid, "" if V2 else "pids", "pids.max")
    expect("pids.max while created", got, "77")
    with open(os.path.join(cgroup_dir(pid, "" if V2 else "pids"), "cgroup.procs")) as f:
        expect("container process in its cgroup at create", str(pid) in f.read().split(), True)


_applied_before_start.__doc__ = """create: all resources MUST be created before start; the
container process is in its limited cgroup while still created."""
add(Case("cgroups.at-create", "runtime.md", "Create", MUST, _applied_before_start))
