"""What this host is, read from the kernel, for tests whose expectation depends on it.

Such a test checks the host first and skips, printing how the host differs, where its
expectation cannot hold; it never passes or fails on a fact of another machine.
"""

from __future__ import annotations

import os

import pytest

CAP_SYS_RESOURCE = 24


def in_bounding_set(cap: int) -> bool:
    """Whether this process (root running the tests) may hold capability number ``cap``."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    raise AssertionError("/proc/self/status has no CapBnd line")


def cgroup_v1_hybrid() -> bool:
    """v1 controllers under /sys/fs/cgroup/*, cgroup2 at /sys/fs/cgroup/unified."""
    return os.path.ismount("/sys/fs/cgroup/memory") and os.path.ismount("/sys/fs/cgroup/unified")


def systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system")


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def rt_group_sched() -> bool:
    """Real-time group scheduling: a new v1 cpu cgroup starts with no real-time runtime."""
    return os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")


def resctrl_mounted() -> bool:
    return os.path.exists("/sys/fs/resctrl/schemata")


def cgroup2_offers_hugetlb() -> bool:
    """Whether the unified hierarchy has hugetlb now: a v1 hugetlb hierarchy still alive in
    some other mount namespace (unmounted here) keeps the controller from it."""
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            return "hugetlb" in f.read().split()
    except OSError:
        return False


def require(holds: bool, host: str) -> None:
    """Skip the calling test unless ``holds``; ``host`` says what this host has instead."""
    if not holds:
        pytest.skip(f"not on this host: {host}")


V1_HYBRID = pytest.mark.skipif(
    not cgroup_v1_hybrid(),
    reason="not on this host: the test is about a cgroup v1 hybrid host (v1 controllers under "
    "/sys/fs/cgroup, cgroup2 at /sys/fs/cgroup/unified)",
)
