"""cgroup v2 device rules: ocirt's eBPF program against the kernel's own v1 devices cgroup.

The same rules are applied to a v1 devices cgroup (the kernel's implementation, the oracle)
and, as an eBPF program, to a cgroup of the unified hierarchy at /sys/fs/cgroup/unified; a
process in each tries mknod and opens on the same nodes, and the outcomes must agree. The
nodes live in a private temporary directory: block devices are only opened for reading,
and nothing is ever written to a device.

Then whole containers run with a cgroup2-only view of /sys/fs/cgroup (a private mount
namespace per command with the unified hierarchy bound there), the way a stock Debian 12,
Ubuntu or Fedora host looks to ocirt, next to runc seeing the same view.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime, cgroup_dirs
from ocirt.runtime import specgen, syscalls
from ocirt.runtime.cgroups import remove_tree
from ocirt.runtime.cgroups.v1 import V1Cgroup
from ocirt.runtime.cgroups.v2 import V2Cgroup
from ocirt.runtime.errors import SpecError
from support.cgroup2 import write_v2_view

UNIFIED = "/sys/fs/cgroup/unified"
DEVICES = "/sys/fs/cgroup/devices"
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}
# name, type, major, minor, opens tried: harmless devices, block ones read only
NODES = (
    ("null", "c", 1, 3, ("r", "w", "rw")),
    ("full", "c", 1, 7, ("r", "w", "rw")),
    ("tun", "c", 10, 200, ("r", "w", "rw")),
    ("fuse", "c", 10, 229, ("r", "w", "rw")),
    ("loop", "b", 7, 0, ("r",)),
)
CHILD = r"""
import os, stat, sys
where = sys.argv[1]
flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}
for spec in sys.argv[2:]:
    name, kind, major, minor, modes = spec.split(":")
    mode = (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | 0o600
    try:
        os.mknod(f"{where}/m-{name}", mode, os.makedev(int(major), int(minor)))
        print(name, "m", "ok")
    except PermissionError:
        print(name, "m", "EPERM")
    for how in modes.split(","):
        try:
            os.close(os.open(f"{where}/n-{name}", flags[how] | os.O_NONBLOCK | os.O_CLOEXEC))
            print(name, how, "ok")
        except PermissionError:
            print(name, how, "EPERM")
        except OSError as exc:  # past the device check: the driver said no
            print(name, how, "ok", exc.errno)
"""


def rule(allow: bool, kind: str, major: int, minor: int, access: str) -> dict[str, Any]:
    return {"allow": allow, "type": kind, "major": major, "minor": minor, "access": access}


@pytest.fixture
def nodes() -> Iterator[str]:
    """Device nodes made outside any restricted cgroup, so opens are tried even when the
    mknod inside is refused."""
    where = tempfile.mkdtemp(prefix="ocirt-test-nodes-")
    try:
        for name, kind, major, minor, _ in NODES:
            mode = (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | 0o600
            os.mknod(os.path.join(where, f"n-{name}"), mode, os.makedev(major, minor))
        yield where
    finally:
        shutil.rmtree(where)


@pytest.fixture
def pair() -> Iterator[tuple[V1Cgroup, V2Cgroup]]:
    """A v1 devices cgroup and a cgroup2 directory, each removed (with what is attached to it)
    even when the test fails."""
    for path in (f"{DEVICES}/cgroup.procs", f"{UNIFIED}/cgroup.procs"):
        if not os.path.exists(path):
            pytest.fail(f"this test needs {path}")
    name = f"ocirt-test-ebpf-{uuid.uuid4().hex[:8]}"
    v1 = V1Cgroup({"devices": f"{DEVICES}/{name}"})
    v2 = V2Cgroup(f"{UNIFIED}/{name}", UNIFIED)
    try:
        v1.create()
        v2.create()
        yield v1, v2
    finally:
        remove_tree(f"{DEVICES}/{name}")
        remove_tree(f"{UNIFIED}/{name}")


def outcomes(cgroup_dir: str, where: str) -> list[str]:
    """What a process that enters ``cgroup_dir`` before it starts may do with NODES."""
    specs = [f"{n}:{k}:{ma}:{mi}:{','.join(m)}" for n, k, ma, mi, m in NODES]
    procs = os.path.join(cgroup_dir, "cgroup.procs")

    def enter() -> None:
        with open(procs, "w") as f:
            f.write("0")

    res = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, where, *specs],
        capture_output=True,
        text=True,
        preexec_fn=enter,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    for entry in os.listdir(where):
        if entry.startswith("m-"):
            os.unlink(os.path.join(where, entry))
    return [" ".join(line.split()[:3]) for line in res.stdout.splitlines()]


RULE_SETS: list[list[dict[str, Any]]] = [
    [],
    [DENY_ALL],
    [ALLOW_ALL],
    [DENY_ALL, rule(True, "b", 7, 0, "r"), rule(True, "c", 10, 200, "rw")],
    [DENY_ALL, rule(True, "c", 10, -1, "r"), rule(True, "c", 10, 200, "w")],
    [DENY_ALL, rule(True, "c", 10, -1, "rw"), rule(False, "c", 10, 200, "m")],
    [ALLOW_ALL, rule(False, "c", 10, 200, "w")],
    [ALLOW_ALL, rule(False, "c", 10, 200, "rw"), rule(True, "c", 10, 200, "r")],
    [ALLOW_ALL, rule(False, "b", -1, -1, "rwm")],
    [ALLOW_ALL, rule(False, "c", -1, 229, "r")],
    [ALLOW_ALL, rule(False, "c", 10, -1, "m")],
    [DENY_ALL, rule(True, "c", -1, 229, "rw"), rule(True, "c", 1, 7, "w")],
]


@pytest.mark.parametrize("rules", RULE_SETS, ids=[str(i) for i in range(len(RULE_SETS))])
def test_the_program_does_what_the_v1_devices_cgroup_does(
    rules: list[dict[str, Any]], pair: tuple[V1Cgroup, V2Cgroup], nodes: str
) -> None:
    v1, v2 = pair
    v1.apply({"devices": rules})
    v2.apply({"devices": rules})
    kernel = outcomes(v1.paths["devices"], nodes)
    ours = outcomes(v2.dir, nodes)
    assert ours == kernel
    assert len(ours) == sum(1 + len(modes) for *_, modes in NODES)


def test_a_partial_deny_catches_a_read_write_open(pair: tuple[V1Cgroup, V2Cgroup], nodes: str) -> None:
    """Denying only ``w`` must stop an O_RDWR open, as v1 does (runc 1.1's program lets it through)."""
    _, v2 = pair
    v2.apply({"devices": [ALLOW_ALL, rule(False, "c", 10, 200, "w")]})
    tun = [line for line in outcomes(v2.dir, nodes) if line.startswith("tun ")]
    assert tun == ["tun m ok", "tun r ok", "tun w EPERM", "tun rw EPERM"]


def attached(path: str) -> list[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return syscalls.bpf_device_programs(fd)
    finally:
        os.close(fd)


def test_reapplying_replaces_the_program_and_allow_all_removes_it(pair: tuple[V1Cgroup, V2Cgroup]) -> None:
    _, v2 = pair
    v2.apply(None)
    (first,) = attached(v2.dir)
    v2.apply({"unified": {"cgroup.max.descendants": "5"}})
    (second,) = attached(v2.dir)
    assert second != first
    v2.apply({"devices": [ALLOW_ALL]})
    assert attached(v2.dir) == []
    with pytest.raises(FileNotFoundError):
        syscalls.bpf_prog_fd(second)  # detached and closed: the kernel freed it


def test_bad_rules_attach_nothing_and_write_nothing(pair: tuple[V1Cgroup, V2Cgroup]) -> None:
    _, v2 = pair
    hole = [DENY_ALL, rule(True, "c", 4, -1, "rw"), rule(False, "c", 4, 1, "w")]
    with pytest.raises(SpecError):
        v2.apply({"devices": hole, "unified": {"cgroup.max.descendants": "3"}})
    with pytest.raises(SpecError):
        v2.apply({"devices": [DENY_ALL], "memory": {"limit": "lots"}})
    assert attached(v2.dir) == []
    with open(os.path.join(v2.dir, "cgroup.max.descendants")) as f:
        assert f.read().strip() == "max"


def test_a_hybrid_host_without_the_v1_controller_uses_the_unified_hierarchy(
    pair: tuple[V1Cgroup, V2Cgroup], nodes: str
) -> None:
    _, v2 = pair
    cg = V1Cgroup({"unified": v2.dir})
    cg.apply({"devices": [DENY_ALL, rule(True, "c", 10, 200, "r")]})
    assert len(attached(v2.dir)) == 1
    tun = [line for line in outcomes(v2.dir, nodes) if line.startswith("tun ")]
    assert tun == ["tun m ok", "tun r ok", "tun w EPERM", "tun rw EPERM"]


# --- containers on a cgroup2-only view of the host ------------------------------------------

PROBE = (
    "echo x > /dev/null && echo null-ok; "
    "mknod /dev/blk b 7 0 && echo blk-mknod-ok; head -c1 /dev/blk > /dev/null; echo blk-r=$?; "
    "mknod /dev/fuse c 10 229 && echo fuse-mknod-ok; "
    "[ -c /dev/fuse ] && { true < /dev/fuse; echo fuse-r=$?; true > /dev/fuse; echo fuse-w=$?; "
    "true <> /dev/fuse; echo fuse-rw=$?; }; true"
)
MADE = ["null-ok", "blk-mknod-ok"]  # /dev/fuse: runc 1.1's default list has /dev/net/tun
CAPS = ["CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_CHOWN", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID"]


@pytest.fixture
def v2_view(tmp_path: Any) -> str:
    return write_v2_view(str(tmp_path))


def container(rt: Runtime, cid: str, args: list[str], devices: list[dict[str, Any]] | None) -> str:
    """A bundle with an absolute cgroup path, runc's usual capabilities plus CAP_MKNOD (runc
    grants none when the config lists none), and the given rules (None: no resources)."""

    def edit(config: dict[str, Any]) -> None:
        config["process"]["capabilities"] = {k: list(CAPS) for k in ("bounding", "effective", "permitted")}
        config["linux"]["cgroupsPath"] = f"/{cid}"
        if devices is not None:
            config["linux"]["resources"] = {"devices": devices}

    return rt.bundle(args, edit)


def run_probe(rt: Runtime, devices: list[dict[str, Any]] | None) -> list[str]:
    cid = rt.new_id()
    res = rt("run", "--bundle", container(rt, cid, ["sh", "-c", PROBE], devices), cid)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def runc_probe(rt: Runtime, view: str, devices: list[dict[str, Any]] | None) -> list[str]:
    """runc 1.1 on the same view, with a root of its own; its container is always deleted."""
    cid = f"ocirt-test-runc-{uuid.uuid4().hex[:8]}"
    root = os.path.join(rt.workdir, "runc-root")
    bundle = container(rt, cid, ["sh", "-c", PROBE], devices)
    try:
        res = subprocess.run(
            [view, "runc", "--root", root, "run", "--bundle", bundle, cid],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        subprocess.run([view, "runc", "--root", root, "delete", "--force", cid], capture_output=True)
    assert res.returncode == 0, res.stderr
    assert not cgroup_dirs(cid)
    return res.stdout.split()


CASES: list[tuple[list[dict[str, Any]] | None, list[str], bool]] = [
    (None, ["blk-r=1", "fuse-mknod-ok", "fuse-r=1", "fuse-w=1", "fuse-rw=1"], True),
    ([DENY_ALL], ["blk-r=1", "fuse-mknod-ok", "fuse-r=1", "fuse-w=1", "fuse-rw=1"], True),
    (
        [DENY_ALL, rule(True, "b", 7, 0, "r"), rule(True, "c", 10, 229, "r")],
        ["blk-r=0", "fuse-mknod-ok", "fuse-r=0", "fuse-w=1", "fuse-rw=1"],
        True,
    ),
    # runc 1.1's program lets the O_RDWR open through; the v1 kernel and ocirt do not
    (
        [ALLOW_ALL, rule(False, "c", 10, 229, "w")],
        ["blk-r=0", "fuse-mknod-ok", "fuse-r=0", "fuse-w=1", "fuse-rw=1"],
        False,
    ),
    ([ALLOW_ALL, rule(False, "c", 10, 229, "m")], ["blk-r=0"], True),
]


@pytest.mark.parametrize(
    ("devices", "expected", "runc_agrees"), CASES, ids=[str(i) for i in range(len(CASES))]
)
def test_containers_on_a_cgroup2_host_are_held_to_their_rules(
    rt: Runtime, v2_view: str, devices: list[dict[str, Any]] | None, expected: list[str], runc_agrees: bool
) -> None:
    on_v1 = run_probe(rt, devices)  # this hybrid host: the kernel's v1 devices cgroup
    rt.command = [v2_view, OCIRT]
    on_v2 = run_probe(rt, devices)
    assert on_v2 == on_v1 == MADE + expected
    runc = runc_probe(rt, v2_view, devices)
    assert (runc == on_v2) is runc_agrees, runc


def exec_probe(rt: Runtime, cid: str) -> list[str]:
    script = "true < /dev/fuse; echo r=$?; true <> /dev/fuse; echo rw=$?"
    res = rt("exec", cid, "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def update(rt: Runtime, cid: str, resources: dict[str, Any]) -> None:
    path = os.path.join(rt.workdir, f"update-{uuid.uuid4().hex[:6]}.json")
    with open(path, "w") as f:
        json.dump(resources, f)
    res = rt("update", "--resources", path, cid)
    assert res.returncode == 0, res.stderr


def test_update_replaces_the_program_and_delete_frees_it(rt: Runtime, v2_view: str) -> None:
    rt.command = [v2_view, OCIRT]
    cid = rt.new_id()
    script = "mknod /dev/fuse c 10 229 && exec sleep 1000"
    res = rt("run", "--detach", "--bundle", container(rt, cid, ["sh", "-c", script], [DENY_ALL]), cid)
    assert res.returncode == 0, res.stderr
    cgroup = f"{UNIFIED}/{cid}"
    deadline = time.monotonic() + 10
    while exec_probe(rt, cid) != ["r=1", "rw=1"]:  # the node may not be made yet
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (first,) = attached(cgroup)

    update(rt, cid, {"devices": [DENY_ALL, rule(True, "c", 10, 229, "rw")]})
    assert exec_probe(rt, cid) == ["r=0", "rw=0"]
    (second,) = attached(cgroup)
    update(rt, cid, {"unified": {"cgroup.max.descendants": "10"}})  # the rules stay
    assert exec_probe(rt, cid) == ["r=0", "rw=0"]
    (third,) = attached(cgroup)
    update(rt, cid, {"devices": [DENY_ALL, rule(True, "c", 10, 229, "r")]})
    assert exec_probe(rt, cid) == ["r=0", "rw=1"]
    (last,) = attached(cgroup)
    assert len({first, second, third, last}) == 4
    for gone in (first, second, third):
        with pytest.raises(FileNotFoundError):
            syscalls.bpf_prog_fd(gone)

    res = rt("delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert not os.path.exists(cgroup)
    deadline = time.monotonic() + 5
    while True:  # the kernel releases a removed cgroup's programs from a work queue
        try:
            os.close(syscalls.bpf_prog_fd(last))
        except FileNotFoundError:
            break
        assert time.monotonic() < deadline, f"program {last} outlived its cgroup"
        time.sleep(0.05)


def test_ocirt_specs_default_config_runs_on_a_cgroup2_host(rt: Runtime, v2_view: str) -> None:
    """``ocirt spec`` always writes a deny-all rule: it must run there, /dev/null and urandom
    usable, anything else refused (CAP_MKNOD added so that a refused open can be seen)."""
    rt.command = [v2_view, OCIRT]
    config = specgen.default_spec()
    script = (
        "echo x > /dev/null && head -c2 /dev/urandom | wc -c; "
        "mknod /dev/fuse c 10 229 && { true < /dev/fuse; echo fuse-r=$?; }"
    )
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", script]
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_MKNOD")
    bundle = rt.bundle(config["process"]["args"])
    rt.rewrite(bundle, config)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["2", "fuse-r=1"]
    assert "can't open /dev/fuse: Operation not permitted" in res.stderr


APPLY = """
import sys
from ocirt.runtime.cgroups.v2 import V2Cgroup
from ocirt.runtime.errors import OcirtError
try:
    V2Cgroup(sys.argv[1], sys.argv[2]).apply({"devices": [{"allow": False, "access": "rwm"}]})
except OcirtError as exc:
    print(exc)
    sys.exit(1)
"""


def test_without_bpf_privileges_only_a_user_namespace_goes_on(pair: tuple[V1Cgroup, V2Cgroup]) -> None:
    """runc's rule: in a user namespace the kernel refuses bpf(2), and the rules go unenforced;
    a root without CAP_BPF, CAP_SYS_ADMIN and CAP_NET_ADMIN elsewhere gets an error."""
    _, v2 = pair
    apply = [sys.executable, "-I", "-c", APPLY, v2.dir, UNIFIED]
    res = subprocess.run(["unshare", "--user", "--map-root-user", *apply], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert attached(v2.dir) == []
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-bpf,-sys_admin,-net_admin,-perfmon"]
    res = subprocess.run([*drop, *apply], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    assert res.stdout.strip() == (
        f"linux.resources.devices: device programs on {v2.dir}: bpf BPF_PROG_QUERY: Operation not permitted"
    )
    assert attached(v2.dir) == []
