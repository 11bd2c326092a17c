"""The stats document of ``ocirt events``, read from the container's cgroup files.

The shape is runc's (``types.Stats`` of runc 1.1/1.2), because managers parse it: the keys,
the nesting, and which zero fields Go's ``omitempty`` drops. Go encodes maps with sorted
keys, so ``memory.raw`` and ``hugetlb`` are sorted too. The readings follow runc's drivers:
on cgroup v1 CPU time comes from ``cpuacct`` (``cpuacct.stat`` in clock ticks, converted to
nanoseconds), memory from ``memory.*_in_bytes`` with memory+swap as ``swap``, block IO from
the first family of ``blkio`` files that has entries (BFQ debug, BFQ, CFQ, throttle); on v2
from ``cpu.stat``, ``memory.current``/``max``/``peak``, ``io.stat`` and the PSI files, with
``swap`` reported as memory+swap like v1 (cgroup-v2.rst names every file used here).

A file a host lacks (no swap accounting, no controller) reads as zero, as runc's optional
files do; a container's stats are a snapshot that races its processes anyway.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.cgroups import Cgroup

MAX_UINT64 = (1 << 64) - 1
NS_PER_SEC = 1_000_000_000

# (v1 file in runc's order, stats key); the CFQ family has the same names without ".bfq"
_BFQ_DEBUG = (
    ("blkio.bfq.sectors_recursive", "sectorsRecursive"),
    ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
    ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
    ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
    ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
    ("blkio.bfq.time_recursive", "ioTimeRecursive"),
    ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
    ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
)
_BLKIO_FAMILIES = (
    _BFQ_DEBUG,
    _BFQ_DEBUG[-2:],
    tuple((name.replace("blkio.bfq.", "blkio."), key) for name, key in _BFQ_DEBUG),
    (
        ("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.throttle.io_serviced", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive"),
    ),
)
# io.stat key -> (stats key, op)
_IO_V2 = {
    "rbytes": ("ioServiceBytesRecursive", "Read"),
    "wbytes": ("ioServiceBytesRecursive", "Write"),
    "rios": ("ioServicedRecursive", "Read"),
    "wios": ("ioServicedRecursive", "Write"),
}
_CPUSET_FLAGS = (
    "cpu_exclusive",
    "mem_hardwall",
    "mem_exclusive",
    "memory_migrate",
    "memory_spread_page",
    "memory_spread_slab",
    "memory_pressure",
    "sched_load_balance",
    "sched_relax_domain_level",
)


def read_stats(cg: Cgroup) -> dict[str, Any]:
    """runc's stats document for ``cg``; OSError only for a file that exists but cannot be read."""
    if cg.version == 2:
        return _stats_v2(cg.paths[""])
    return _stats_v1(cg.paths)


def _stats_v1(paths: dict[str, str]) -> dict[str, Any]:
    return {
        "cpu": _cpu_v1(paths.get("cpu"), paths.get("cpuacct")),
        "cpuset": _cpuset_v1(paths.get("cpuset")),
        "memory": _memory_v1(paths.get("memory")),
        "pids": _pids(paths.get("pids")),
        "blkio": _blkio_v1(paths.get("blkio")),
        "hugetlb": _hugetlb(paths.get("hugetlb"), "usage_in_bytes"),
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _stats_v2(path: str) -> dict[str, Any]:
    return {
        "cpu": _cpu_v2(path),
        "cpuset": _cpuset_v1(None),
        "memory": _memory_v2(path),
        "pids": _pids(path),
        "blkio": _io_v2(path),
        "hugetlb": _hugetlb(path, "current"),
        "intel_rdt": {},
        "network_interfaces": None,
    }


# --- reading files


def read(path: str) -> str | None:
    """The file's text, or None where the host has no such file."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def to_uint(text: str) -> int:
    """runc's GetCgroupParamUint: ``max`` is the largest uint64, a negative value is 0."""
    text = text.strip()
    if text == "max":
        return MAX_UINT64
    return max(int(text), 0)


def uint_file(path: str | None, name: str) -> int:
    if path is None:
        return 0
    text = read(os.path.join(path, name))
    return 0 if text is None or not text.strip() else to_uint(text)


def key_values(text: str | None) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``cpu.stat``, ``memory.events``)."""
    found = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value:
            found[key] = to_uint(value)
    return found


def _omit(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Go's ``omitempty`` for the listed keys: zero, empty or null values are left out."""
    return {k: v for k, v in obj.items() if k not in keys or v}


def _cpu_list(text: str | None) -> list[int]:
    """``0-2,5`` as ``[0, 1, 2, 5]``."""
    found: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        found += range(int(first), int(last or first) + 1)
    return found


# --- cpu


def _cpu(usage: dict[str, Any], throttling: dict[str, int], psi: dict[str, Any] | None) -> dict[str, Any]:
    out = {
        "usage": _omit(usage, "total", "percpu", "percpu_kernel", "percpu_user"),
        "throttling": _omit(throttling, "periods", "throttledPeriods", "throttledTime"),
        "psi": psi,
    }
    return _omit(out, "psi")


def _cpu_v1(cpu: str | None, acct: str | None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "total": 0,
        "percpu": [],
        "percpu_kernel": [],
        "percpu_user": [],
        "kernel": 0,
        "user": 0,
    }
    if acct is not None:
        usage["total"] = uint_file(acct, "cpuacct.usage")
        usage["percpu"] = [int(v) for v in (read(os.path.join(acct, "cpuacct.usage_percpu")) or "").split()]
        for line in (read(os.path.join(acct, "cpuacct.usage_all")) or "").splitlines()[1:]:
            _, user, system = line.split()
            usage["percpu_user"].append(int(user))
            usage["percpu_kernel"].append(int(system))
        ticks = key_values(read(os.path.join(acct, "cpuacct.stat")))
        hz = os.sysconf("SC_CLK_TCK")
        usage["kernel"] = ticks.get("system", 0) * NS_PER_SEC // hz
        usage["user"] = ticks.get("user", 0) * NS_PER_SEC // hz
    stat = key_values(read(os.path.join(cpu, "cpu.stat"))) if cpu is not None else {}
    throttling = {
        "periods": stat.get("nr_periods", 0),
        "throttledPeriods": stat.get("nr_throttled", 0),
        "throttledTime": stat.get("throttled_time", 0),
    }
    return _cpu(usage, throttling, None)


def _cpu_v2(path: str) -> dict[str, Any]:
    stat = key_values(read(os.path.join(path, "cpu.stat")))
    usage = {
        "total": stat.get("usage_usec", 0) * 1000,
        "kernel": stat.get("system_usec", 0) * 1000,
        "user": stat.get("user_usec", 0) * 1000,
    }
    throttling = {
        "periods": stat.get("nr_periods", 0),
        "throttledPeriods": stat.get("nr_throttled", 0),
        "throttledTime": stat.get("throttled_usec", 0) * 1000,
    }
    return _cpu(usage, throttling, _psi(path, "cpu"))


def _psi(path: str, resource: str) -> dict[str, Any] | None:
    """``some``/``full`` lines of ``<resource>.pressure``; floats that are whole print as Go does."""
    text = read(os.path.join(path, f"{resource}.pressure"))
    if text is None:
        return None
    out: dict[str, Any] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        data: dict[str, Any] = {}
        for field in fields:
            key, _, value = field.partition("=")
            number = float(value) if key.startswith("avg") else int(value)
            data[key] = int(number) if number == int(number) else number
        out[kind] = data
    return out


# --- cpuset


def _cpuset_v1(path: str | None) -> dict[str, Any]:
    def file(name: str) -> str | None:
        return read(os.path.join(path, f"cpuset.{name}")) if path is not None else None

    out: dict[str, Any] = {"cpus": _cpu_list(file("cpus"))}
    for flag in _CPUSET_FLAGS:
        text = file(flag)
        out[flag] = int(text) if text and text.strip() else 0
        if flag == "cpu_exclusive":
            out["mems"] = _cpu_list(file("mems"))
    return _omit(out, "cpus", "mems")


# --- memory


def _memory(cache: int, entries: dict[str, dict[str, int]], raw: dict[str, int], psi: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"cache": cache}
    for key, entry in entries.items():
        out[key] = _omit(entry, "usage", "max")
    out["raw"] = dict(sorted(raw.items()))
    out["psi"] = psi
    return _omit(out, "cache", "raw", "psi")


def _entry(limit: int = 0, usage: int = 0, peak: int = 0, failcnt: int = 0) -> dict[str, int]:
    return {"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt}


def _memory_v1(path: str | None) -> dict[str, Any]:
    raw = key_values(read(os.path.join(path, "memory.stat"))) if path is not None else {}
    entries = {
        key: _entry_v1(path, prefix)
        for key, prefix in (
            ("usage", "memory"),
            ("swap", "memory.memsw"),
            ("kernel", "memory.kmem"),
            ("kernelTCP", "memory.kmem.tcp"),
        )
    }
    return _memory(raw.get("cache", 0), entries, raw, None)


def _entry_v1(path: str | None, prefix: str) -> dict[str, int]:
    if path is None or not os.path.exists(os.path.join(path, f"{prefix}.usage_in_bytes")):
        return _entry()
    return _entry(
        uint_file(path, f"{prefix}.limit_in_bytes"),
        uint_file(path, f"{prefix}.usage_in_bytes"),
        uint_file(path, f"{prefix}.max_usage_in_bytes"),
        uint_file(path, f"{prefix}.failcnt"),
    )


def _memory_v2(path: str) -> dict[str, Any]:
    raw = key_values(read(os.path.join(path, "memory.stat")))
    usage, swap = _entry(), _entry()
    if os.path.exists(os.path.join(path, "memory.current")):
        usage = _entry(
            uint_file(path, "memory.max"), uint_file(path, "memory.current"), uint_file(path, "memory.peak")
        )
    if os.path.exists(os.path.join(path, "memory.swap.current")):
        swap_limit = uint_file(path, "memory.swap.max")
        if swap_limit != MAX_UINT64 and usage["limit"] != MAX_UINT64:
            swap_limit += usage["limit"]
        swap = _entry(swap_limit, uint_file(path, "memory.swap.current") + usage["usage"])
    entries = {"usage": usage, "swap": swap, "kernel": _entry(), "kernelTCP": _entry()}
    return _memory(raw.get("file", 0), entries, raw, _psi(path, "memory"))


# --- pids, block IO, hugetlb


def _pids(path: str | None) -> dict[str, int]:
    if path is None:
        return {}
    current = read(os.path.join(path, "pids.current"))
    if current is None:
        procs = read(os.path.join(path, "cgroup.procs")) or ""
        count = len(procs.split())
    else:
        count = to_uint(current)
    limit = (read(os.path.join(path, "pids.max")) or "max").strip()
    return _omit({"current": count, "limit": 0 if limit == "max" else to_uint(limit)}, "current", "limit")


def _blkio_entry(major: int, minor: int, op: str, value: int) -> dict[str, Any]:
    return _omit({"major": major, "minor": minor, "op": op, "value": value}, "major", "minor", "op", "value")


def _blkio_file(path: str, name: str) -> list[dict[str, Any]]:
    """``8:0 Read 1234`` or ``8:0 1234`` lines; the closing ``Total N`` line is skipped."""
    entries = []
    for line in (read(os.path.join(path, name)) or "").splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue
        op = fields[2] if len(fields) == 4 else ""
        entries.append(_blkio_entry(int(fields[0]), int(fields[1]), op, int(fields[-1])))
    return entries


def _blkio_v1(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    for family in _BLKIO_FAMILIES:
        first = _blkio_file(path, family[0][0])
        if not first:
            continue
        out = {family[0][1]: first}
        for name, key in family[1:]:
            entries = _blkio_file(path, name)
            if not entries:
                break
            out[key] = entries
        return out
    return {}


def _io_v2(path: str) -> dict[str, Any]:
    out: dict[str, list[dict[str, Any]]] = {}
    for line in (read(os.path.join(path, "io.stat")) or "").splitlines():
        device, *fields = line.split()
        major, _, minor = device.partition(":")
        for field in fields:
            key, _, value = field.partition("=")
            if key in _IO_V2:
                name, op = _IO_V2[key]
                out.setdefault(name, []).append(_blkio_entry(int(major), int(minor), op, int(value)))
    result: dict[str, Any] = dict(out)
    psi = _psi(path, "io")
    if psi is not None:
        result["psi"] = psi
    return result


def _hugetlb(path: str | None, usage_file: str) -> dict[str, Any]:
    """Page sizes as the cgroup's file names spell them (``2MB``, ``1GB``)."""
    if path is None:
        return {}
    sizes = sorted(
        parts[1]
        for parts in (name.split(".") for name in os.listdir(path))
        if len(parts) == 3 and parts[0] == "hugetlb" and parts[2] == usage_file
    )
    out = {}
    for size in sizes:
        if usage_file == "current":
            events = key_values(read(os.path.join(path, f"hugetlb.{size}.events")))
            entry = {"usage": uint_file(path, f"hugetlb.{size}.current"), "failcnt": events.get("max", 0)}
        else:
            entry = {
                "usage": uint_file(path, f"hugetlb.{size}.usage_in_bytes"),
                "max": uint_file(path, f"hugetlb.{size}.max_usage_in_bytes"),
                "failcnt": uint_file(path, f"hugetlb.{size}.failcnt"),
            }
        out[size] = _omit(entry, "usage", "max")
    return out
