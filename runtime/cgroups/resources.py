"""``linux.resources`` (runtime-spec 1.3) as an ordered list of cgroup file writes.

Pure: nothing here reads the host, so every translation and every validation error can be
tested without root. The drivers (``v1``, ``v2``) decide what the host lacks and in which
order a few pairs must really be written (memory against memory+swap, the CFS period).

Each result is a list whose ``fields`` attribute names, for every write, the config field
it comes from, so that a kernel refusal or a missing file is reported against that field.

Zero means "unset" for the limits, shares, quota and periods, as in runc; ``-1`` means
unlimited. ``pids.limit`` follows runtime-spec 1.3 and runc 1.4: a negative value is
``max``, ``0`` is a real limit of zero. ``memory.kernel`` is deprecated and ignored, as in
runc; ``linux.resources.devices`` is not a file write and is handled elsewhere.

On cgroup v2 the v1-only knobs with no v2 counterpart are dropped as runc and crun do
(``kernel``, ``kernelTCP``, ``swappiness``, ``disableOOMKiller``, ``useHierarchy``: v2 is
always hierarchical, block IO leaf weights); the ones a container would silently lose
(real-time CPU time, ``network``) are errors. Conversions follow runc 1.4 (its
opencontainers/cgroups library): ``cpu.weight`` from shares on a log scale that takes the
minimum, default and maximum (2, 1024, 262144) to 1, 100 and 10000 (the linear formula of
runc 1.1 made the default 39, a twelfth of a v2 default); ``io.weight`` from the blkio
weight ``1 + (weight - 10) * 9999 // 990``; ``memory.swap.max`` = memory+swap - memory,
which needs a memory limit that is a number.
"""

from __future__ import annotations

from ocirt.runtime.errors import SpecError
from ocirt.specs.config import list_field, object_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

R = "linux.resources"
DEFAULT_CFS_PERIOD = 100000
_HUGE_UNITS = ("KB", "MB", "GB", "TB")
_THROTTLES = (
    ("throttleReadBpsDevice", "read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "write_iops_device", "wiops"),
)


class V1Writes(list[tuple[str, str, str]]):
    """``(controller, file, value)`` in write order; ``fields[i]`` is the source of item ``i``."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []

    def add(self, field: str, controller: str, file: str, value: str) -> None:
        self.append((controller, file, value))
        self.fields.append(field)


class V2Writes(list[tuple[str, str]]):
    """``(file, value)`` in write order; ``fields[i]`` is the source of item ``i``."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []

    def add(self, field: str, file: str, value: str) -> None:
        self.append((file, value))
        self.fields.append(field)


def optional(file: str, value: str) -> bool:
    """Writes a host may lack at no cost: no swap accounting, no TCP or reservation knobs."""
    if ".rsvd." in file or file == "memory.kmem.tcp.limit_in_bytes":
        return True
    if file == "memory.memsw.limit_in_bytes":
        return value == "-1"
    return file == "memory.swap.max" and value in ("max", "0")


def cpu_weight(shares: int) -> int:
    """``ceil(10 ** ((l * l + 125 * l) / 612 - 7 / 34))`` with ``l = log2(shares)``."""
    import math

    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    level = math.log2(shares)
    return math.ceil(10 ** ((level * level + 125 * level) / 612.0 - 7.0 / 34.0))


def io_weight(weight: int) -> int:
    return 1 + (weight - 10) * 9999 // 990


def v1_writes(resources: dict[str, Any]) -> V1Writes:
    out = V1Writes()
    if resources.get("unified"):
        object_field(resources, "unified", f"{R}.unified")
        raise SpecError(f"{R}.unified", "needs cgroup v2, but this host uses cgroup v1")
    mem = object_field(resources, "memory", f"{R}.memory")
    if mem is not None:
        _memory_v1(Memory(mem), out)
    cpu = object_field(resources, "cpu", f"{R}.cpu")
    if cpu is not None:
        _cpu_v1(Cpu(cpu), out)
    pids = pids_max(resources)
    if pids is not None:
        out.add(f"{R}.pids.limit", "pids", "pids.max", pids)
    blkio = object_field(resources, "blockIO", f"{R}.blockIO")
    if blkio is not None:
        _blkio_v1(blkio, out)
    for field, size, limit in _hugepages(resources):
        for kind in ("", ".rsvd"):
            out.add(field, "hugetlb", f"hugetlb.{size}{kind}.limit_in_bytes", str(limit))
    net = object_field(resources, "network", f"{R}.network")
    if net is not None:
        _network_v1(net, out)
    for field, value in _rdma(resources):
        out.add(field, "rdma", "rdma.max", value)
    return out


def v2_writes(resources: dict[str, Any]) -> V2Writes:
    out = V2Writes()
    mem = object_field(resources, "memory", f"{R}.memory")
    if mem is not None:
        _memory_v2(Memory(mem), out)
    cpu = object_field(resources, "cpu", f"{R}.cpu")
    if cpu is not None:
        _cpu_v2(Cpu(cpu), out)
    pids = pids_max(resources)
    if pids is not None:
        out.add(f"{R}.pids.limit", "pids.max", pids)
    blkio = object_field(resources, "blockIO", f"{R}.blockIO")
    if blkio is not None:
        _io_v2(blkio, out)
    for field, size, limit in _hugepages(resources):
        for kind in ("", ".rsvd"):
            out.add(field, f"hugetlb.{size}{kind}.max", str(limit))
    net = object_field(resources, "network", f"{R}.network")
    if net is not None and (net.get("classID") is not None or net.get("priorities")):
        raise SpecError(f"{R}.network", "cgroup v2 has no net_cls or net_prio controller")
    for field, value in _rdma(resources):
        out.add(field, "rdma.max", value)
    unified = object_field(resources, "unified", f"{R}.unified") or {}
    for key, value in unified.items():
        field = f"{R}.unified.{key}"
        if not key or "/" in key or key in (".", ".."):
            raise SpecError(field, "must name a file in the container's cgroup directory")
        if not isinstance(value, str):
            raise SpecError(field, "must be a string")
        out.add(field, key, value)
    return out


class Memory:
    """``linux.resources.memory``, checked once for both versions."""

    __slots__ = (
        "check_before_update",
        "disable_oom_killer",
        "kernel_tcp",
        "limit",
        "reservation",
        "swap",
        "swappiness",
        "use_hierarchy",
    )

    def __init__(self, mem: dict[str, Any]) -> None:
        f = f"{R}.memory"
        self.limit = _int(mem, "limit", f"{f}.limit", lo=-1)
        self.reservation = _int(mem, "reservation", f"{f}.reservation", lo=-1)
        self.swap = _int(mem, "swap", f"{f}.swap", lo=-1)
        _int(mem, "kernel", f"{f}.kernel")
        self.kernel_tcp = _int(mem, "kernelTCP", f"{f}.kernelTCP", lo=-1)
        self.swappiness = _int(mem, "swappiness", f"{f}.swappiness", lo=0, hi=100)
        self.disable_oom_killer = _bool(mem, "disableOOMKiller", f"{f}.disableOOMKiller")
        self.use_hierarchy = _bool(mem, "useHierarchy", f"{f}.useHierarchy")
        self.check_before_update = _bool(mem, "checkBeforeUpdate", f"{f}.checkBeforeUpdate")
        if self.limit is not None and self.swap is not None and 0 < self.swap < self.limit:
            raise SpecError(
                f"{f}.swap",
                f"must be at least memory.limit ({self.limit}): it limits memory and swap together",
            )
        if self.limit == -1 and not self.swap:
            self.swap = -1


def _memory_v1(m: Memory, out: V1Writes) -> None:
    f = f"{R}.memory"
    if m.use_hierarchy is not None:
        value = "1" if m.use_hierarchy else "0"
        out.add(f"{f}.useHierarchy", "memory", "memory.use_hierarchy", value)
    if m.limit:
        out.add(f"{f}.limit", "memory", "memory.limit_in_bytes", str(m.limit))
    if m.swap:
        out.add(f"{f}.swap", "memory", "memory.memsw.limit_in_bytes", str(m.swap))
    if m.reservation:
        out.add(f"{f}.reservation", "memory", "memory.soft_limit_in_bytes", str(m.reservation))
    if m.kernel_tcp:
        out.add(f"{f}.kernelTCP", "memory", "memory.kmem.tcp.limit_in_bytes", str(m.kernel_tcp))
    if m.disable_oom_killer:
        out.add(f"{f}.disableOOMKiller", "memory", "memory.oom_control", "1")
    if m.swappiness is not None:
        out.add(f"{f}.swappiness", "memory", "memory.swappiness", str(m.swappiness))


def _memory_v2(m: Memory, out: V2Writes) -> None:
    f = f"{R}.memory"
    if m.swap:
        out.add(f"{f}.swap", "memory.swap.max", _v2_swap(m.limit, m.swap))
    if m.limit:
        out.add(f"{f}.limit", "memory.max", _max(m.limit))
    if m.reservation:
        out.add(f"{f}.reservation", "memory.low", _max(m.reservation))


def _v2_swap(limit: int | None, swap: int) -> str:
    """cgroup v2 limits swap alone, the spec limits memory and swap together: a finite
    total needs a finite memory limit to subtract (runc refuses it too)."""
    if swap == -1:
        return "max"
    if not limit or limit == -1:
        raise SpecError(f"{R}.memory.swap", "needs a memory.limit other than 0 or -1 on cgroup v2")
    return str(swap - limit)


class Cpu:
    """``linux.resources.cpu``, checked once for both versions."""

    __slots__ = (
        "burst",
        "cpus",
        "idle",
        "mems",
        "period",
        "quota",
        "rt_period",
        "rt_runtime",
        "shares",
    )

    def __init__(self, cpu: dict[str, Any]) -> None:
        f = f"{R}.cpu"
        self.shares = _int(cpu, "shares", f"{f}.shares", lo=0)
        if self.shares and not 2 <= self.shares <= 262144:
            raise SpecError(f"{f}.shares", "must be between 2 and 262144")
        self.quota = _int(cpu, "quota", f"{f}.quota", lo=-1)
        self.period = _int(cpu, "period", f"{f}.period", lo=0)
        self.burst = _int(cpu, "burst", f"{f}.burst", lo=0)
        if self.burst and self.quota and self.quota > 0 and self.burst > self.quota:
            raise SpecError(f"{f}.burst", f"must not exceed cpu.quota ({self.quota})")
        self.rt_runtime = _int(cpu, "realtimeRuntime", f"{f}.realtimeRuntime", lo=-1)
        self.rt_period = _int(cpu, "realtimePeriod", f"{f}.realtimePeriod", lo=0)
        self.cpus = _str(cpu, "cpus", f"{f}.cpus")
        self.mems = _str(cpu, "mems", f"{f}.mems")
        self.idle = _int(cpu, "idle", f"{f}.idle", lo=0, hi=1)


def _cpu_v1(c: Cpu, out: V1Writes) -> None:
    f = f"{R}.cpu"
    if c.shares:
        out.add(f"{f}.shares", "cpu", "cpu.shares", str(c.shares))
    if c.period:
        out.add(f"{f}.period", "cpu", "cpu.cfs_period_us", str(c.period))
    if c.quota:
        out.add(f"{f}.quota", "cpu", "cpu.cfs_quota_us", str(c.quota))
    if c.burst is not None:
        out.add(f"{f}.burst", "cpu", "cpu.cfs_burst_us", str(c.burst))
    if c.rt_period:
        out.add(f"{f}.realtimePeriod", "cpu", "cpu.rt_period_us", str(c.rt_period))
    if c.rt_runtime:
        out.add(f"{f}.realtimeRuntime", "cpu", "cpu.rt_runtime_us", str(c.rt_runtime))
    if c.idle is not None:
        out.add(f"{f}.idle", "cpu", "cpu.idle", str(c.idle))
    if c.cpus:
        out.add(f"{f}.cpus", "cpuset", "cpuset.cpus", c.cpus)
    if c.mems:
        out.add(f"{f}.mems", "cpuset", "cpuset.mems", c.mems)


def _cpu_v2(c: Cpu, out: V2Writes) -> None:
    f = f"{R}.cpu"
    for key, value in (("realtimeRuntime", c.rt_runtime), ("realtimePeriod", c.rt_period)):
        if value:
            raise SpecError(f"{f}.{key}", "cgroup v2 has no real-time CPU bandwidth control")
    if c.shares:
        out.add(f"{f}.shares", "cpu.weight", str(cpu_weight(c.shares)))
    if c.quota or c.period:
        quota = str(c.quota) if c.quota and c.quota > 0 else "max"
        field = f"{f}.quota" if c.quota else f"{f}.period"
        out.add(field, "cpu.max", f"{quota} {c.period or DEFAULT_CFS_PERIOD}")
    if c.burst is not None:
        out.add(f"{f}.burst", "cpu.max.burst", str(c.burst))
    if c.idle is not None:
        out.add(f"{f}.idle", "cpu.idle", str(c.idle))
    if c.cpus:
        out.add(f"{f}.cpus", "cpuset.cpus", c.cpus)
    if c.mems:
        out.add(f"{f}.mems", "cpuset.mems", c.mems)


def pids_max(resources: dict[str, Any]) -> str | None:
    """The ``pids.max`` value of ``pids.limit``, or None when there is nothing to write
    (runtime-spec 1.3 made the limit optional: unset leaves the cgroup as it is)."""
    pids = object_field(resources, "pids", f"{R}.pids")
    limit = None if pids is None else _int(pids, "limit", f"{R}.pids.limit")
    if limit is None:
        return None
    return "max" if limit < 0 else str(limit)


def _weight(parent: dict[str, Any], key: str, field: str) -> int | None:
    value = _int(parent, key, field, lo=0)
    if value and not 10 <= value <= 1000:
        raise SpecError(field, "must be between 10 and 1000")
    return value


def _device(entry: Any, field: str) -> str:
    if not isinstance(entry, dict):
        raise SpecError(field, "must be an object")
    numbers = []
    for key in ("major", "minor"):
        value = _int(entry, key, f"{field}.{key}", lo=0)
        if value is None:
            raise SpecError(f"{field}.{key}", "is required")
        numbers.append(value)
    return f"{numbers[0]}:{numbers[1]}"


def _weight_devices(blkio: dict[str, Any]) -> list[tuple[str, str, int | None, int | None]]:
    """(field, "major:minor", weight, leafWeight) for each ``weightDevice`` entry."""
    found = []
    for i, entry in enumerate(list_field(blkio, "weightDevice", f"{R}.blockIO.weightDevice")):
        field = f"{R}.blockIO.weightDevice[{i}]"
        dev = _device(entry, field)
        weight = _weight(entry, "weight", f"{field}.weight")
        leaf = _weight(entry, "leafWeight", f"{field}.leafWeight")
        if not weight and not leaf:
            raise SpecError(field, "needs weight or leafWeight")
        found.append((field, dev, weight, leaf))
    return found


def _throttles(blkio: dict[str, Any]) -> list[tuple[str, str, str, str, int]]:
    """(field, v1 file suffix, v2 io.max key, "major:minor", rate) for every throttle entry."""
    found = []
    for key, v1_name, v2_key in _THROTTLES:
        for i, entry in enumerate(list_field(blkio, key, f"{R}.blockIO.{key}")):
            field = f"{R}.blockIO.{key}[{i}]"
            dev = _device(entry, field)
            rate = _int(entry, "rate", f"{field}.rate", lo=0)
            if rate is None:
                raise SpecError(f"{field}.rate", "is required")
            found.append((field, v1_name, v2_key, dev, rate))
    return found


def _blkio_v1(blkio: dict[str, Any], out: V1Writes) -> None:
    f = f"{R}.blockIO"
    weight = _weight(blkio, "weight", f"{f}.weight")
    if weight:
        out.add(f"{f}.weight", "blkio", "blkio.weight", str(weight))
    leaf = _weight(blkio, "leafWeight", f"{f}.leafWeight")
    if leaf:
        out.add(f"{f}.leafWeight", "blkio", "blkio.leaf_weight", str(leaf))
    for field, dev, dev_weight, dev_leaf in _weight_devices(blkio):
        if dev_weight:
            out.add(field, "blkio", "blkio.weight_device", f"{dev} {dev_weight}")
        if dev_leaf:
            out.add(field, "blkio", "blkio.leaf_weight_device", f"{dev} {dev_leaf}")
    for field, v1_name, _, dev, rate in _throttles(blkio):
        out.add(field, "blkio", f"blkio.throttle.{v1_name}", f"{dev} {rate}")


def _io_v2(blkio: dict[str, Any], out: V2Writes) -> None:
    f = f"{R}.blockIO"
    weight = _weight(blkio, "weight", f"{f}.weight")
    if weight:
        out.add(f"{f}.weight", "io.weight", str(io_weight(weight)))
    _weight(blkio, "leafWeight", f"{f}.leafWeight")
    for field, dev, dev_weight, _ in _weight_devices(blkio):
        if dev_weight:
            out.add(field, "io.weight", f"{dev} {io_weight(dev_weight)}")
    for field, _, v2_key, dev, rate in _throttles(blkio):
        out.add(field, "io.max", f"{dev} {v2_key}={rate}")


def _hugepages(resources: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(field, page size as in the file names, limit) for each ``hugepageLimits`` entry."""
    found = []
    for i, entry in enumerate(list_field(resources, "hugepageLimits", f"{R}.hugepageLimits")):
        field = f"{R}.hugepageLimits[{i}]"
        if not isinstance(entry, dict):
            raise SpecError(field, "must be an object")
        size = _str(entry, "pageSize", f"{field}.pageSize")
        if size is None:
            raise SpecError(f"{field}.pageSize", "is required")
        if not (size[:-2].isdigit() and size[:-2].isascii() and size[-2:] in _HUGE_UNITS):
            raise SpecError(f"{field}.pageSize", f"must look like 2MB or 1GB, got {size!r}")
        limit = _int(entry, "limit", f"{field}.limit", lo=0)
        if limit is None:
            raise SpecError(f"{field}.limit", "is required")
        found.append((field, size, limit))
    return found


def _network_v1(net: dict[str, Any], out: V1Writes) -> None:
    f = f"{R}.network"
    class_id = _int(net, "classID", f"{f}.classID", lo=0, hi=0xFFFFFFFF)
    if class_id is not None:
        out.add(f"{f}.classID", "net_cls", "net_cls.classid", str(class_id))
    for i, entry in enumerate(list_field(net, "priorities", f"{f}.priorities")):
        field = f"{f}.priorities[{i}]"
        if not isinstance(entry, dict):
            raise SpecError(field, "must be an object")
        name = _str(entry, "name", f"{field}.name")
        prio = _int(entry, "priority", f"{field}.priority", lo=0, hi=0xFFFFFFFF)
        if not name or prio is None:
            raise SpecError(field, "needs name and priority")
        out.add(field, "net_prio", "net_prio.ifpriomap", f"{name} {prio}")


def _rdma(resources: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, rdma.max line) per device; the file format is the same in v1 and v2."""
    found = []
    for dev, limits in (object_field(resources, "rdma", f"{R}.rdma") or {}).items():
        field = f"{R}.rdma.{dev}"
        if not isinstance(limits, dict):
            raise SpecError(field, "must be an object")
        parts = [dev]
        for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            value = _int(limits, key, f"{field}.{key}", lo=0, hi=0xFFFFFFFF)
            if value is not None:
                parts.append(f"{name}={value}")
        if len(parts) == 1:
            raise SpecError(field, "needs hcaHandles or hcaObjects")
        found.append((field, " ".join(parts)))
    return found


def _max(value: int) -> str:
    return "max" if value == -1 else str(value)


def _str(parent: dict[str, Any], key: str, field: str) -> str | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise SpecError(field, "must be a string")
    return value


def _bool(parent: dict[str, Any], key: str, field: str) -> bool | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, bool):
        raise SpecError(field, "must be true or false")
    return value


def _int(
    parent: dict[str, Any], key: str, field: str, lo: int | None = None, hi: int | None = None
) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(field, "must be an integer")
    if hi is not None and lo is not None and not lo <= value <= hi:
        raise SpecError(field, f"must be between {lo} and {hi}")
    if lo is not None and value < lo:
        raise SpecError(field, "must not be negative" if lo == 0 else f"must be at least {lo}")
    return value
