"""Where ocirt must behave as runc (or crun, where runc has no answer) does, end to end."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest
from conftest import Runtime
from ocirt.runtime import syscalls
from ocirt.runtime.process import parent


def test_pids_limit_zero_is_a_limit_applied_after_the_runtime_forks(rt: Runtime) -> None:
    """runtime-spec 1.3: 0 is a real limit. The runtime still forks its init; the container
    then cannot fork at all (the kernel's refusal, EAGAIN, ends busybox sh)."""

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"pids": {"limit": 0}}

    bundle = rt.bundle(["sh", "-c", "echo in; /bin/true; echo after"], edit)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert (res.stdout, res.returncode) == ("in\n", 2), res.stderr
    assert "can't fork: Resource temporarily unavailable" in res.stderr


def _no_proc(c: dict[str, Any]) -> None:
    c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]


def test_a_config_without_proc_runs(rt: Runtime) -> None:
    """The runtime needs no /proc inside the container after pivot_root (it reaches the exec
    fifo through the state directory it holds), so create, state and start behave."""
    bundle = rt.bundle(["sh", "-c", "ls -A /proc | wc -l; echo hi"], _no_proc)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert (res.returncode, res.stdout.split()) == (0, ["0", "hi"]), res.stderr
    cid = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["true"], _no_proc), cid)
    assert res.returncode == 0, res.stderr
    assert rt.state(cid)["status"] == "created"
    res = rt("start", cid)
    assert res.returncode == 0, res.stderr


def test_devices_outside_dev_and_with_a_trailing_slash(rt: Runtime) -> None:
    """config-linux.md: a device path MAY be anywhere, notably outside of /dev; runc cleans
    a trailing slash away. Both become nodes with their numbers and mode."""

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["devices"] = [
            {"path": "/opt/devs/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
            {"path": "/dev/zero2/", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640},
        ]
        c["linux"]["resources"] = {"devices": [{"allow": True, "type": "c", "major": 1, "access": "rwm"}]}

    script = "stat -c '%F %t:%T %a' /opt/devs/null2 /dev/zero2; echo x > /opt/devs/null2 && echo wrote"
    res = rt("run", "--bundle", rt.bundle(["sh", "-c", script], edit), rt.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "character special file 1:3 666",
        "character special file 1:5 640",
        "wrote",
    ]


def test_a_device_path_holding_another_file_is_an_error(rt: Runtime) -> None:
    """Once any path is allowed, a device over an existing file that is not that device must
    fail create (config-linux.md: MUST generate an error), leaving nothing behind."""

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["devices"] = [{"path": "/etc/passwd", "type": "c", "major": 1, "minor": 5}]

    cid = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["true"], edit), cid)
    assert res.returncode == 1
    assert res.stderr == "ocirt: linux.devices[0] (/etc/passwd): a regular file exists there, not c 1:5\n"


def test_tmpfs_without_mode_keeps_the_mode_of_the_directory_it_covers(rt: Runtime) -> None:
    """runc and crun: the covered directory's mode unless ``mode=`` is given; a directory the
    runtime makes gets tmpfs's 1777."""

    def edit(c: dict[str, Any]) -> None:
        c["mounts"] += [
            {"destination": "/kept", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "ro"]},
            {"destination": "/given", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]},
            {"destination": "/fresh", "type": "tmpfs", "source": "tmpfs"},
        ]

    bundle = rt.bundle(["stat", "-c", "%a", "/kept", "/given", "/fresh"], edit)
    for name in ("kept", "given"):
        os.mkdir(os.path.join(bundle, "rootfs", name))
        os.chmod(os.path.join(bundle, "rootfs", name), 0o1750)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert (res.returncode, res.stdout.split()) == (0, ["1750", "700", "1777"]), res.stderr


def _marked(rt: Runtime, edit: Any) -> str:
    bundle = rt.bundle(["sh", "-c", "readlink /proc/self/ns/mnt; cat /marker"], edit)
    with open(os.path.join(bundle, "rootfs", "marker"), "w") as f:
        f.write("in the rootfs\n")
    return bundle


def test_without_a_mount_namespace_the_runtimes_is_inherited(rt: Runtime) -> None:
    """As runc and crun: the mounts are made in the runtime's namespace (they stay on the
    host under the rootfs, as runc leaves them) and the root is entered with chroot.
    maskedPaths or readonlyPaths would then act on the host's paths: refused, as runc does."""

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]

    res = rt("run", "--bundle", rt.bundle(["true"], edit), rt.new_id())
    assert (res.returncode, res.stderr) == (
        1,
        "ocirt: config.json: linux.maskedPaths: needs a mount namespace (it would change the host's paths)\n",
    )

    def unmasked(c: dict[str, Any]) -> None:
        edit(c)
        c["linux"]["maskedPaths"], c["linux"]["readonlyPaths"] = [], []

    bundle = _marked(rt, unmasked)
    try:
        res = rt("run", "--bundle", bundle, rt.new_id())
    finally:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if bundle in line]
        for point in reversed(points):
            syscalls.umount2(point, syscalls.MNT_DETACH)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [os.readlink("/proc/self/ns/mnt"), "in the rootfs"]
    assert f"{bundle}/rootfs/proc" in points


def test_a_joined_mount_namespace_gets_the_rootfs(rt: Runtime) -> None:
    """runc sets up root.path and pivots inside a mount namespace joined by path."""
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/mnt"
        deadline = time.monotonic() + 5
        while os.readlink(path) == os.readlink("/proc/self/ns/mnt") and time.monotonic() < deadline:
            time.sleep(0.01)

        def edit(c: dict[str, Any]) -> None:
            spaces = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
            c["linux"]["namespaces"] = [*spaces, {"type": "mount", "path": path}]

        res = rt("run", "--bundle", _marked(rt, edit), rt.new_id())
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [os.readlink(path), "in the rootfs"]
    finally:
        holder.kill()
        holder.wait()


NUMA_POLICY = "head -1 /proc/self/numa_maps | cut -d' ' -f2"


@pytest.mark.parametrize(
    ("policy", "seen"),
    [
        ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
        ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "interleave=static:0"),
        ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
        ({"mode": "MPOL_LOCAL"}, "local"),
    ],
)
def test_memory_policy_is_the_container_process_policy(
    rt: Runtime, policy: dict[str, Any], seen: str
) -> None:
    """linux.memoryPolicy: set_mempolicy before execve; the kernel shows the task policy on
    every mapping of /proc/self/numa_maps that has none of its own."""
    if not os.path.exists("/proc/self/numa_maps"):
        pytest.skip("kernel without NUMA support (/proc/self/numa_maps missing)")

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["memoryPolicy"] = policy

    res = rt("run", "--bundle", rt.bundle(["sh", "-c", NUMA_POLICY], edit), rt.new_id())
    assert (res.returncode, res.stdout.strip()) == (0, seen), res.stderr


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        ({}, "linux.memoryPolicy.mode: is required"),
        ({"mode": "MPOL_FIRST_TOUCH"}, "linux.memoryPolicy.mode: unknown mode 'MPOL_FIRST_TOUCH'"),
        ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
        ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes: MPOL_LOCAL takes no nodes"),
        ({"mode": "MPOL_BIND", "nodes": "0-x"}, "linux.memoryPolicy.nodes: '0-x' is not a node list"),
        (
            {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_X"]},
            "linux.memoryPolicy.flags[0]: unknown flag",
        ),
        ({"mode": "MPOL_BIND", "nodes": "1000"}, "linux.memoryPolicy: set_mempolicy: Invalid argument"),
    ],
)
def test_memory_policy_errors_name_the_field(rt: Runtime, policy: dict[str, Any], error: str) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["memoryPolicy"] = policy

    cid = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["true"], edit), cid)
    assert res.returncode == 1
    assert res.stderr.startswith("ocirt: ") and res.stderr.count("\n") == 1, res.stderr
    assert error in res.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_create_waits_for_init_to_block_on_the_fifo(tmp_path: Any) -> None:
    """What create checks after ``ready``: a process asleep opening a fifo passes, one that
    exits on the way fails (real processes, the kernel's own states)."""
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    blocked = subprocess.Popen(["sh", "-c", f"echo > {fifo}"])
    dying = subprocess.Popen(["sh", "-c", "exit 3"])
    try:
        assert parent.blocks_on_fifo(blocked.pid)
        dying.wait()
        assert not parent.blocks_on_fifo(dying.pid)
    finally:
        blocked.kill()
        blocked.wait()
