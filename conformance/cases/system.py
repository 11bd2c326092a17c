"""config.md Hostname and Domainname, config-linux.md Sysctl, Personality and time namespace
offsets: kernel settings a container sees as its own."""

from __future__ import annotations

import os
from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, Case, add, expect
from ocirt.conformance.probe import probe, refused

CFG, CL = "config.md", "config-linux.md"


def _set(**fields: Any) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg.update(fields)

    return edit


def _linux(**fields: Any) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg["linux"].update(fields)

    return edit


def _no_time_ns() -> str | None:
    return None if os.path.exists("/proc/self/ns/time") else "kernel without time namespaces"


probe(
    "hostname",
    CFG,
    "Hostname",
    "hostname; cat /proc/sys/kernel/hostname",
    "conformance\nconformance",
    _set(hostname="conformance"),
    doc="hostname: the container's hostname as its processes see it.",
)
probe(
    "domainname",
    CFG,
    "Domainname",
    "cat /proc/sys/kernel/domainname",
    "example.test",
    _set(domainname="example.test"),
    version="1.1.0",
    doc="domainname (1.1.0): the container's NIS domain name in its UTS namespace. runc 1.1.5 ignores "
    "the field, so this fails on runc.",
)
probe(
    "sysctl.net",
    CL,
    "Sysctl",
    "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_default_ttl",
    "1\n99",
    _linux(sysctl={"net.ipv4.ip_forward": "1", "net.ipv4.ip_default_ttl": "99"}),
    doc="sysctl: kernel parameters of the container's network namespace.",
)
probe(
    "sysctl.ipc",
    CL,
    "Sysctl",
    "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/kernel/msgmax",
    "1\n4096",
    _linux(sysctl={"kernel.shm_rmid_forced": "1", "kernel.msgmax": "4096"}),
    doc="sysctl: parameters of the container's IPC namespace.",
)
probe(
    "sysctl.slash-form",
    CL,
    "Sysctl",
    "cat /proc/sys/net/ipv4/conf/lo/forwarding",
    "1",
    _linux(sysctl={"net/ipv4/conf/lo/forwarding": "1"}),
    level="SHOULD",
    doc="A sysctl name with slashes (sysctl(8) accepts both) names the same parameter.",
)


def _joined_net_sysctl(ctx: Context) -> None:
    holder, _ = ctx.create(ctx.config(["sleep", "300"]))
    path = f"/proc/{ctx.pid(holder)}/ns/net"
    cfg = ctx.config(["sh", "-c", "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ping_group_range"])
    spaces = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    cfg["linux"]["namespaces"] = [*spaces, {"type": "network", "path": path}]
    cfg["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 2147483647"}
    lines = ctx.output(cfg).split("\n")
    expect("network namespace of the container", lines[0], os.readlink(path))
    expect("net.ipv4.ping_group_range in it", lines[1].split(), ["0", "2147483647"])


_joined_net_sysctl.__doc__ = """sysctl in a network namespace joined by path (podman passes the
netns it made, and net.ipv4.ping_group_range): the parameter is set in that namespace."""
add(Case("sysctl.net-joined", CL, "Sysctl", MUST, _joined_net_sysctl))
refused(
    "sysctl.hostname-conflict",
    CL,
    "Sysctl",
    _linux(sysctl={"kernel.hostname": "not-the-hostname"}),
    doc="kernel.hostname contradicting hostname: no container can have both, so create (or start) "
    "MUST fail (runtime.md Lifecycle: a runtime unable to create the environment config.json "
    "specifies MUST generate an error).",
)
refused(
    "sysctl.unknown",
    CL,
    "Sysctl",
    _linux(sysctl={"net.no.such.parameter": "1"}),
    doc="A sysctl that cannot be applied: create MUST fail (runtime.md Create: the runtime MUST "
    "generate an error if it cannot apply a property).",
)
probe(
    "personality",
    CL,
    "Personality",
    "uname -m",
    "i686",
    _linux(personality={"domain": "LINUX32"}),
    version="1.1.0",
    doc="personality LINUX32 makes uname report a 32-bit machine. runc 1.1.5 predates the field and "
    "ignores it (fails here by design).",
)


def _numa_maps() -> str | None:
    if not os.path.exists("/proc/self/numa_maps"):
        return "kernel without NUMA support (/proc/self/numa_maps missing)"
    return None


probe(
    "memory-policy",
    CL,
    "Memory policy",
    "head -1 /proc/self/numa_maps | cut -d' ' -f2",
    "bind:0",
    _linux(memoryPolicy={"mode": "MPOL_BIND", "nodes": "0"}),
    version="1.3.0",
    needs=_numa_maps,
    doc="memoryPolicy is the container process's NUMA policy (set_mempolicy(2)); numa_maps shows "
    "it on mappings without a policy of their own. runc 1.1.5 predates the field and ignores it.",
)
refused(
    "memory-policy.no-mode",
    CL,
    "Memory policy",
    _linux(memoryPolicy={"nodes": "0"}),
    version="1.3.0",
    doc="mode is REQUIRED: a policy without one cannot be applied, create MUST fail. runc 1.1.5 "
    "ignores memoryPolicy.",
)


def _time_offsets(cfg: dict[str, Any], ctx: Context) -> None:
    cfg["linux"]["namespaces"].append({"type": "time"})
    cfg["linux"]["timeOffsets"] = {
        "monotonic": {"secs": 864000, "nanosecs": 0},
        "boottime": {"secs": 864000, "nanosecs": 0},
    }


probe(
    "time-offsets",
    CL,
    "Offset for Time Namespace",
    "cut -d. -f1 /proc/uptime | awk '{print ($1 >= 864000)}'",
    "1",
    _time_offsets,
    version="1.2.0",
    needs=_no_time_ns,
    doc="timeOffsets (1.2.0) shift the time namespace's boottime and monotonic clocks. runc 1.1.5 and "
    "crun 1.8 predate time namespaces and reject or ignore them.",
)
