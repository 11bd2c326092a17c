"""``linux.resources`` on a cgroup2-only host, next to runc on the same view of the host.

This host's unified hierarchy offers only the hugetlb controller (plus the core
``cgroup.*`` files), so that is what is compared for real: the files both runtimes leave
in the container's cgroup, read by the test from the host. Controllers the view lacks must
fail with the field named and nothing left behind. The conversions for controllers this
host cannot show (cpu.weight, io.weight, memory.swap.max) are checked against runc's own
documented values in test_cgroup_resources.py. Last, ``ocirtctl run`` with ocirt in that
view: the deny-all rule the manager always sends must run there.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime, cgroup_dirs
from ocirt.runtime import syscalls
from support import hostfacts
from support.cgroup2 import UNIFIED, write_v2_view

MiB = 1 << 20
GiB = 1 << 30
RESOURCES = {
    # not a multiple of the page size: the kernel rounds it down, for both runtimes
    "hugepageLimits": [{"pageSize": "2MB", "limit": 8 * MiB + 1}, {"pageSize": "1GB", "limit": 2 * GiB}],
    "unified": {"cgroup.max.descendants": "7", "cgroup.max.depth": "2"},
}
FILES = ("hugetlb.2MB.max", "hugetlb.1GB.max", "cgroup.max.descendants", "cgroup.max.depth")


@pytest.fixture
def v2_rt(rt: Runtime, tmp_path: Any) -> Runtime:
    rt.command = [write_v2_view(str(tmp_path)), OCIRT]
    return rt


def bundle(rt: Runtime, cid: str, resources: dict[str, Any]) -> str:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["cgroupsPath"] = f"/{cid}"
        config["linux"]["resources"] = resources

    return rt.bundle(["sleep", "1000"], edit)


def read(cid: str, name: str) -> str:
    with open(os.path.join(UNIFIED, cid, name)) as f:
        return f.read().strip()


@pytest.fixture
def runc(rt: Runtime, tmp_path: Any) -> Iterator[list[str]]:
    """runc 1.1 on the same view; every container it made is deleted, even on failure."""
    view = write_v2_view(str(tmp_path))
    command = [view, "runc", "--root", str(tmp_path / "runc-root")]
    yield command
    made = subprocess.run([*command, "list", "-q"], capture_output=True, text=True).stdout.split()
    for cid in made:
        subprocess.run([*command, "delete", "--force", cid], capture_output=True)
    assert not [d for cid in made for d in cgroup_dirs(cid)]


def test_hugetlb_and_unified_files_match_runc(v2_rt: Runtime, runc: list[str]) -> None:
    hostfacts.require(hostfacts.cgroup2_offers_hugetlb(), "cgroup2 offers no hugetlb now")
    cid = v2_rt.new_id()
    res = v2_rt("create", "--bundle", bundle(v2_rt, cid, RESOURCES), cid)
    assert res.returncode == 0, res.stderr
    ours = {name: read(cid, name) for name in FILES}
    theirs_id = f"ocirt-test-runc-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryFile("w+") as err:  # the container keeps its stdio: no pipes
        made = subprocess.run(
            [*runc, "create", "--bundle", bundle(v2_rt, theirs_id, RESOURCES), theirs_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=60,
        )
        err.seek(0)
        assert made.returncode == 0, err.read()
    theirs = {name: read(theirs_id, name) for name in FILES}
    assert ours == theirs
    assert ours["hugetlb.2MB.max"] == str(8 * MiB)
    # runc 1.2 and later also limit reservations; runc 1.1 does not
    assert read(cid, "hugetlb.2MB.rsvd.max") == str(8 * MiB)

    res = v2_rt(
        "update", "--resources", "-", cid, input='{"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}'
    )
    assert res.returncode == 0, res.stderr
    assert (read(cid, "hugetlb.2MB.max"), read(cid, "hugetlb.1GB.max")) == ("0", str(2 * GiB))


@pytest.mark.parametrize(
    ("resources", "field", "file"),
    [
        ({"pids": {"limit": 10}}, "linux.resources.pids.limit", "pids.max"),
        ({"memory": {"limit": 64 * MiB}}, "linux.resources.memory.limit", "memory.max"),
        ({"cpu": {"shares": 1024}}, "linux.resources.cpu.shares", "cpu.weight"),
    ],
)
def test_a_controller_the_host_lacks_fails_cleanly(
    v2_rt: Runtime, resources: dict[str, Any], field: str, file: str
) -> None:
    controller = file.split(".")[0]
    with open(f"{UNIFIED}/cgroup.controllers") as f:
        if controller in f.read().split():
            pytest.skip(f"this host's cgroup2 offers {controller}: there is no refusal to see")
    cid = v2_rt.new_id()
    res = v2_rt("create", "--bundle", bundle(v2_rt, cid, resources), cid)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert (
        f"{field}: /sys/fs/cgroup/{cid}/{file} does not exist: the {controller} controller is not enabled"
        in lines[0]
    )
    assert not cgroup_dirs(cid)
    assert v2_rt("state", cid).returncode != 0


def test_ocirtctl_run_on_a_cgroup2_host(tmp_path: Any) -> None:
    """``ocirtctl run`` always sends a deny-all rule and docker's defaults: on a cgroup2 host
    the container runs, in a unified cgroup only, with one device program attached."""
    from support.ctl import manager

    view = write_v2_view(str(tmp_path))
    runtime = str(tmp_path / "ocirt-v2")
    with open(runtime, "w") as f:
        f.write(f'#!/bin/sh\nexec {view} {OCIRT} "$@"\n')
    os.chmod(runtime, 0o755)
    (tmp_path / "m").mkdir()
    with manager(str(tmp_path / "m")) as m:
        probe = "echo x > /dev/null && echo null-ok; mknod /dev/fuse c 10 229; true < /dev/fuse; echo r=$?"
        res = m("--runtime", runtime, "run", "--rm", m.data, "sh", "-c", probe)
        assert res.stdout.split() == ["null-ok", "r=1"]
        assert "can't open /dev/fuse: Operation not permitted" in res.stderr
        res = m(
            "--runtime",
            runtime,
            "run",
            "--rm",
            "--device",
            "/dev/fuse",
            m.data,
            "sh",
            "-c",
            "true < /dev/fuse; echo r=$?",
        )
        assert res.stdout.split() == ["r=0"]

        cid = m("--runtime", runtime, "run", "-d", m.data, "sleep", "1000").stdout.strip()
        try:
            dirs = cgroup_dirs(cid)
            assert len(dirs) == 1 and dirs[0].startswith(f"{UNIFIED}/"), dirs
            fd = os.open(dirs[0], os.O_RDONLY | os.O_DIRECTORY)
            try:
                assert len(syscalls.bpf_device_programs(fd)) == 1
            finally:
                os.close(fd)
        finally:
            m("--runtime", runtime, "rm", "-f", cid)
        assert not cgroup_dirs(cid)
