"""``--systemd-cgroup`` against a real systemd manager, checked with ``systemctl``.

This host does not run systemd, so the test starts one: systemd 252 as a manager instance
(``systemd --user``, the same D-Bus Manager API as PID 1's) in a cgroup of its own, with
only an empty default target to reach. ocirt and systemctl then run in a view of a systemd
host: a private mount namespace with the unified hierarchy at /sys/fs/cgroup and that
manager's runtime directory at /run/systemd (``system/`` marks a booted systemd,
``private`` is the manager's socket). The manager, its units and its cgroup are removed
even when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime, cgroup_dirs
from ocirt.runtime.cgroups import procs_under, remove_tree
from support import hostfacts
from support.cgroup2 import UNIFIED

SYSTEMD = "/lib/systemd/systemd"


class Host:
    """The view's wrapper (``run(argv)``) and the manager's cgroup below the hierarchy root."""

    def __init__(self, view: str, root: str) -> None:
        self.view = view
        self.root = root

    def systemctl(self, *args: str) -> str:
        res = subprocess.run([self.view, "systemctl", *args], capture_output=True, text=True, timeout=30)
        return res.stdout + res.stderr

    def show(self, unit: str) -> dict[str, str]:
        text = self.systemctl("show", "-p", "LoadState,ActiveState,ControlGroup,Delegate,Slice", unit)
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def host(tmp_path: Any) -> Iterator[Host]:
    if not os.access(SYSTEMD, os.X_OK):
        pytest.fail(f"this test needs systemd's manager at {SYSTEMD}")
    if not os.path.exists(f"{UNIFIED}/cgroup.procs"):
        pytest.fail(f"this test needs the cgroup2 hierarchy at {UNIFIED}")
    name = f"ocirt-test-systemd-{uuid.uuid4().hex[:8]}"
    units, runtime = tmp_path / "units", tmp_path / "xdg"
    units.mkdir()
    (units / "default.target").write_text("[Unit]\nDescription=ocirt test manager\n")
    (runtime / "systemd" / "system").mkdir(parents=True)
    runtime.chmod(0o700)
    view = str(tmp_path / "view")
    with open(view, "w") as f:
        f.write(
            "#!/bin/sh\nexec unshare --mount --propagation private -- sh -c "
            f"'mount --bind {UNIFIED} /sys/fs/cgroup && mount --bind {runtime}/systemd /run/systemd "
            '&& exec "$@"\' sh "$@"\n'
        )
    os.chmod(view, 0o755)
    os.mkdir(f"{UNIFIED}/{name}")
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_UNIT_PATH": str(units)}
    enter = f"echo $$ > /sys/fs/cgroup/{name}/cgroup.procs && exec {SYSTEMD} --user"
    manager = subprocess.Popen(
        [view, "sh", "-c", enter], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(runtime / "systemd" / "private"):
            assert manager.poll() is None, f"systemd --user exited with {manager.returncode}"
            assert time.monotonic() < deadline, "systemd --user made no private socket in 20s"
            time.sleep(0.05)
        yield Host(view, f"/{name}")
    finally:
        manager.send_signal(signal.SIGRTMIN + 24)  # a user manager's "exit now" (systemd(1))
        try:
            manager.wait(10)
        except subprocess.TimeoutExpired:
            manager.kill()
            manager.wait()
        for pid in procs_under(f"{UNIFIED}/{name}"):
            os.kill(pid, signal.SIGKILL)
        remove_tree(f"{UNIFIED}/{name}")


@pytest.fixture
def sd_rt(rt: Runtime, host: Host) -> Runtime:
    rt.command = [host.view, OCIRT, "--systemd-cgroup"]
    return rt


def test_the_container_runs_in_a_transient_scope(sd_rt: Runtime, host: Host) -> None:
    hostfacts.require(hostfacts.cgroup2_offers_hugetlb(), "cgroup2 offers no hugetlb now")
    cid = sd_rt.new_id()
    unit = f"ocirt-{cid}.scope"
    scope = f"{host.root}/system.slice/{unit}"

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["resources"] = {
            "devices": [{"allow": False, "access": "rwm"}],
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        }

    bundle = sd_rt.bundle(["sleep", "1000"], edit)
    res = sd_rt("run", "--detach", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    shown = host.show(unit)
    assert shown == {
        "LoadState": "loaded",
        "ActiveState": "active",
        "ControlGroup": scope,
        "Delegate": "yes",
        "Slice": "system.slice",
    }
    with open(f"{UNIFIED}{scope}/hugetlb.2MB.max") as f:
        assert f.read().strip() == str(4 << 20)  # written through cgroupfs, as delegation allows
    res = sd_rt("exec", cid, "sh", "-c", "tail -1 /proc/self/cgroup; true < /dev/full; echo r=$?")
    assert res.stdout.split() == [f"0::{scope}", "r=0"]
    res = sd_rt("update", "--resources", "-", cid, input='{"unified": {"cgroup.max.descendants": "5"}}')
    assert res.returncode == 0, res.stderr
    with open(f"{UNIFIED}{scope}/cgroup.max.descendants") as f:
        assert f.read().strip() == "5"

    res = sd_rt("delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert host.show(unit)["LoadState"] == "not-found"
    assert not cgroup_dirs(cid)


def test_a_name_can_be_used_again_after_a_killed_container(sd_rt: Runtime, host: Host) -> None:
    """Whatever state SIGKILL leaves the scope in, delete stops and clears it."""
    cid = sd_rt.new_id()
    bundle = sd_rt.bundle(["sleep", "1000"])
    for _ in range(2):
        res = sd_rt("run", "--detach", "--bundle", bundle, cid)
        assert res.returncode == 0, res.stderr
        assert sd_rt("kill", "--all", cid, "KILL").returncode == 0
        res = sd_rt("delete", "--force", cid)
        assert res.returncode == 0, res.stderr
        assert host.show(f"ocirt-{cid}.scope")["LoadState"] == "not-found"
    assert not cgroup_dirs(cid)


def test_a_unit_that_exists_fails_in_one_line_and_leaves_the_first_alone(
    sd_rt: Runtime, host: Host, tmp_path: Any
) -> None:
    cid = sd_rt.new_id()
    bundle = sd_rt.bundle(["sleep", "1000"])
    res = sd_rt("create", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    other = Runtime(str(tmp_path / "other-root"), sd_rt.workdir)
    other.command = sd_rt.command
    res = other("create", "--bundle", bundle, cid)
    assert res.returncode == 1
    assert res.stderr.strip() == f"ocirt: --systemd-cgroup: systemd already has a unit ocirt-{cid}.scope"
    assert not os.path.exists(os.path.join(other.root, cid))
    assert host.show(f"ocirt-{cid}.scope")["ActiveState"] == "active"


START = """
import json, subprocess, sys
from ocirt.runtime.cgroups import systemd
from ocirt.runtime.cgroups.v2 import V2Cgroup
cid, resources = sys.argv[1], json.loads(sys.argv[2])
cgroup = V2Cgroup("/sys/fs/cgroup" + systemd.locate("", cid))
sleeper = subprocess.Popen(["sleep", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
systemd.start(cgroup, "", cid, sleeper.pid, resources)
"""
SET = """
import json, sys
from ocirt.runtime.cgroups import systemd
systemd.set_limits(sys.argv[1], json.loads(sys.argv[2]))
"""


def test_the_limits_systemd_manages_are_unit_properties(host: Host) -> None:
    """A daemon-reload re-applies a unit's own properties: the limits must be among them,
    at start and after an update.
    This view's cgroup2 has no memory, cpu or cpuset controller, so the manager records
    the properties without applying them; systemctl shows what it recorded."""
    cid = f"ocirt-test-{uuid.uuid4().hex[:10]}"
    resources = {
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 1024, "quota": 33333, "period": 100000, "cpus": "0", "mems": "0"},
    }
    res = subprocess.run(
        [host.view, sys.executable, "-I", "-c", START, cid, json.dumps(resources)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    unit = f"ocirt-{cid}.scope"
    try:
        assert res.returncode == 0, res.stderr
        keys = "MemoryMax,MemoryLow,MemorySwapMax,CPUWeight,CPUQuotaPerSecUSec,CPUQuotaPeriodUSec,AllowedCPUs"
        text = host.systemctl("show", "-p", f"{keys},AllowedMemoryNodes", unit)
        shown = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        assert shown == {
            "MemoryMax": str(64 << 20),
            "MemoryLow": str(32 << 20),
            "MemorySwapMax": str(32 << 20),  # memory+swap less memory
            "CPUWeight": "100",  # runc 1.4's value for the default 1024 shares
            "CPUQuotaPerSecUSec": "340ms",  # 333.33 ms rounded up to systemd's 10 ms steps
            "CPUQuotaPeriodUSec": "100ms",
            "AllowedCPUs": "0",
            "AllowedMemoryNodes": "0",
        }
        update = {"memory": {"limit": 128 << 20}, "pids": {"limit": 50}, "cpu": {"shares": 2}}
        res = subprocess.run(
            [host.view, sys.executable, "-I", "-c", SET, unit, json.dumps(update)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        text = host.systemctl("show", "-p", "MemoryMax,TasksMax,CPUWeight", unit)
        assert sorted(text.split()) == ["CPUWeight=1", f"MemoryMax={128 << 20}", "TasksMax=50"]
    finally:
        host.systemctl("stop", unit)
        host.systemctl("reset-failed", unit)
    assert host.show(unit)["LoadState"] == "not-found"
