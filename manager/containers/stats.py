"""``stats``: CPU %, memory usage/limit, network and block I/O and PIDs of a container.

Cgroup numbers come from the runtime's ``events --stats`` (runc's stats document, read
from the container's own cgroup files), network bytes from ``/proc/<pid>/net/dev`` of its
init (its network namespace). CPU % is docker's: the container's CPU time over the host's
in the same interval, times the number of CPUs, so 100% is one CPU fully used (host figures
from psutil: stats samples for half a second, its import cost does not show). Without a
memory limit the limit shown is the host's memory, as docker shows it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import psutil
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.store import Container


@dataclass
class Sample:
    cpu_ns: int
    system_ns: int
    memory: int
    memory_limit: int
    pids: int
    net_rx: int
    net_tx: int
    blk_read: int
    blk_write: int


def cgroup_stats(ctx: Context, c: Container) -> dict[str, Any]:
    done = ctx.run("events", "--stats", c.id)
    data: dict[str, Any] = json.loads(done.stdout)["data"]
    return data


def system_ns() -> int:
    """The host's CPU time as docker counts it: user to softirq, steal and guests left out."""
    return int(sum(psutil.cpu_times()[:7]) * 1e9)


def net_io(pid: int) -> tuple[int, int]:
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            rows = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for row in rows:
        name, _, rest = row.partition(":")
        if name.strip() != "lo":
            cols = rest.split()
            rx, tx = rx + int(cols[0]), tx + int(cols[8])
    return rx, tx


def sample(ctx: Context, c: Container) -> Sample:
    data = cgroup_stats(ctx, c)
    memory = data.get("memory", {}).get("usage", {})
    blk = {"Read": 0, "Write": 0}
    for entry in data.get("blkio", {}).get("ioServiceBytesRecursive", []) or []:
        if entry.get("op") in blk:
            blk[entry["op"]] += int(entry.get("value", 0))
    rx, tx = net_io(c.pid)
    return Sample(
        cpu_ns=int(data.get("cpu", {}).get("usage", {}).get("total", 0)),
        system_ns=system_ns(),
        memory=int(memory.get("usage", 0)),
        memory_limit=min(int(memory.get("limit", 0)), host_memory()) or host_memory(),
        pids=int(data.get("pids", {}).get("current", 0)),
        net_rx=rx,
        net_tx=tx,
        blk_read=blk["Read"],
        blk_write=blk["Write"],
    )


def host_memory() -> int:
    return int(psutil.virtual_memory().total)


def cpu_percent(before: Sample, after: Sample) -> float:
    system = after.system_ns - before.system_ns
    if system <= 0:
        return 0.0
    return (after.cpu_ns - before.cpu_ns) / system * (os.cpu_count() or 1) * 100.0


def row(c: Container, before: Sample, after: Sample) -> dict[str, Any]:
    mem_pct = after.memory / after.memory_limit * 100.0 if after.memory_limit else 0.0
    return {
        "ID": c.id[:12],
        "Name": c.name,
        "CPUPerc": round(cpu_percent(before, after), 2),
        "MemUsage": after.memory,
        "MemLimit": after.memory_limit,
        "MemPerc": round(mem_pct, 2),
        "NetInput": after.net_rx,
        "NetOutput": after.net_tx,
        "BlockInput": after.blk_read,
        "BlockOutput": after.blk_write,
        "PIDs": after.pids,
    }


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}"


def measure(ctx: Context, containers: list[Container], interval: float = 0.5) -> list[dict[str, Any]]:
    first = [sample(ctx, c) for c in containers]
    time.sleep(interval)
    return [row(c, b, sample(ctx, c)) for c, b in zip(containers, first, strict=True)]
