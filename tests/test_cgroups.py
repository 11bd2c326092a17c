"""The cgroup drivers on this host's real hierarchies: v1 (hybrid) and v2 on /sys/fs/cgroup/unified.

Every cgroup is named ``ocirt-test-<random>``; the fixture kills the processes a test
started and removes every directory carrying that name, frozen or not, even on failure.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import cgroup_dirs
from ocirt.foundation import fastjson
from ocirt.runtime.cgroups import Cgroup, clean_path, load_cgroup, open_cgroup, own_cgroups
from ocirt.runtime.cgroups.systemd import expand_slice, systemd_path
from ocirt.runtime.cgroups.v1 import hierarchies, needs_unified
from ocirt.runtime.cgroups.v2 import V2Cgroup, open_v2
from ocirt.runtime.errors import OcirtError, SpecError
from support import hostfacts, hugetlb

UNIFIED = "/sys/fs/cgroup/unified"
MiB = 1024 * 1024
pytestmark = hostfacts.V1_HYBRID


class Made:
    """A unique cgroup name, and the processes started into it."""

    def __init__(self) -> None:
        self.name = f"ocirt-test-{uuid.uuid4().hex[:10]}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv or ("sleep", "30"), stdin=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def spawn_into(self, cg: Cgroup, script: str) -> subprocess.Popen[bytes]:
        """``sh -c script`` added to ``cg`` before the script runs, so its children follow."""
        proc = self.spawn("sh", "-c", f"read go; {script}")
        cg.add(proc.pid)
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        return proc

    def cleanup(self) -> None:
        dirs = cgroup_dirs(self.name)
        for path in dirs:
            for dirpath, _, _ in os.walk(path):
                for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                    if os.path.exists(os.path.join(dirpath, name)):
                        with open(os.path.join(dirpath, name), "w") as f:
                            f.write(value)
        for path in dirs:
            for dirpath, _, _ in os.walk(path):
                for pid in read(os.path.join(dirpath, "cgroup.procs")).split():
                    os.kill(int(pid), 9)
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for path in dirs:
            for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                _rmdir(dirpath)


def _rmdir(path: str) -> None:
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
    os.rmdir(path)


@pytest.fixture
def made() -> Iterator[Made]:
    m = Made()
    try:
        yield m
    finally:
        m.cleanup()
        assert not cgroup_dirs(m.name)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cgroup_lines(pid: int) -> dict[str, str]:
    found = {}
    for line in read(f"/proc/{pid}/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        found[controllers] = path
    return found


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def gone(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is not None


def grows(path: str, seconds: float = 0.3) -> bool:
    before = os.path.getsize(path)
    time.sleep(seconds)
    return os.path.getsize(path) > before


# --- v1 (hybrid) ------------------------------------------------------------------------


def test_v1_create_apply_add_destroy(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    assert cg.version == 1
    mounts = hierarchies()
    # the unified hierarchy only where the v1 devices or freezer controller is missing
    assert set(cg.paths) == set(mounts) - {"unified"}
    assert cg.paths["memory"] == f"/sys/fs/cgroup/memory/{made.name}"
    cg.create()
    assert all(os.path.isdir(p) for p in cg.paths.values())
    cg.apply(None)
    cg.apply(
        {
            "memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB},
            "pids": {"limit": 42},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
            "blockIO": {"weight": 300},
        }
    )
    mem, cpu, cpuset = cg.paths["memory"], cg.paths["cpu"], cg.paths["cpuset"]
    assert read(f"{mem}/memory.limit_in_bytes") == str(64 * MiB)
    assert read(f"{mem}/memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert read(f"{mem}/memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(f"{cg.paths['pids']}/pids.max") == "42"
    assert read(f"{cpu}/cpu.shares") == "512"
    assert read(f"{cpu}/cpu.cfs_quota_us") == "20000"
    assert read(f"{cpu}/cpu.cfs_period_us") == "100000"
    assert read(f"{cpuset}/cpuset.cpus") == "0"
    assert read(f"{cpuset}/cpuset.mems") == "0"
    blkio = cg.paths["blkio"]
    weight = "blkio.weight" if os.path.exists(f"{blkio}/blkio.weight") else "blkio.bfq.weight"
    assert read(f"{blkio}/{weight}").split()[-1] == "300"

    proc = made.spawn()
    cg.add(proc.pid)
    lines = cgroup_lines(proc.pid)
    assert lines["memory"] == lines["cpu"] == lines["name=systemd"] == f"/{made.name}"
    assert lines[""] == cgroup_lines(os.getpid())[""]
    assert cg.pids() == [proc.pid]

    cg.kill_all(9)  # no cgroup.kill without the unified hierarchy: the v1 freezer's way
    assert proc.wait(5) == -9
    cg.destroy()
    assert not cgroup_dirs(made.name)
    cg.destroy()


def test_a_process_joins_every_v1_hierarchy_itself(made: Made) -> None:
    """``Cgroup.join`` from a forked, single-threaded child: every v1 line of its
    /proc/<pid>/cgroup names the new cgroup, its children follow, the unified line stays."""
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            cg.join()
            os.execvp("sleep", ["sleep", "30"])
        finally:
            os._exit(1)
    os.close(w)
    try:
        assert wait_until(lambda: cg.pids() == [pid])
        lines = cgroup_lines(pid)
        ours = cgroup_lines(os.getpid())
        # a v1 hugetlb hierarchy unmounted here but alive in another mount namespace is listed
        # in /proc/<pid>/cgroup and cannot be joined through the host's /sys/fs/cgroup
        unseen = set() if os.path.ismount("/sys/fs/cgroup/hugetlb") else {"hugetlb"}
        joined = {k: v for k, v in lines.items() if k and k not in unseen}
        assert joined == {k: f"/{made.name}" for k in ours if k and k not in unseen}
        assert lines[""] == ours[""]
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)
    cg.destroy()


def test_the_unified_hierarchy_is_joined_only_where_v1_lacks_devices_or_freezer() -> None:
    both = {k: ("/x", "/") for k in ("devices", "freezer", "memory", "unified")}
    assert not needs_unified(both)
    for missing in ("devices", "freezer"):
        assert needs_unified({k: v for k, v in both.items() if k != missing})
    assert not needs_unified({"memory": ("/x", "/")})


def test_v1_swappiness_oom_rt_kernel_tcp_and_hugetlb(made: Made, hugetlb_v1: str) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    cg.apply(
        {
            "memory": {"swappiness": 17, "disableOOMKiller": True, "kernelTCP": 16 * MiB},
            "cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 1000, "idle": 0},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        }
    )
    mem = cg.paths["memory"]
    assert read(f"{mem}/memory.swappiness") == "17"
    assert "oom_kill_disable 1" in read(f"{mem}/memory.oom_control")
    assert read(f"{mem}/memory.kmem.tcp.limit_in_bytes") == str(16 * MiB)
    assert read(f"{cg.paths['cpu']}/cpu.rt_runtime_us") == "1000"
    assert read(f"{cg.paths['cpu']}/cpu.rt_period_us") == "1000000"
    hugetlb = cg.paths["hugetlb"]
    assert read(f"{hugetlb}/hugetlb.2MB.limit_in_bytes") == str(4 * MiB)
    assert read(f"{hugetlb}/hugetlb.2MB.rsvd.limit_in_bytes") == str(4 * MiB)
    cg.destroy()


def test_hugetlb_leaves_cgroup2_deepest_first_and_returns_parents_first(made: Made) -> None:
    """How the suite frees the controller for v1 (tests/support/hugetlb.py), on a subtree of
    its own: a parent cannot drop hugetlb while a child still enables it."""
    offered = read(f"{UNIFIED}/cgroup.subtree_control").split()
    hostfacts.require("hugetlb" in offered, "cgroup2 does not offer hugetlb to its cgroups")
    base = f"{UNIFIED}/{made.name}"
    os.makedirs(f"{base}/a/b")
    for cgroup in (base, f"{base}/a"):
        with open(f"{cgroup}/cgroup.subtree_control", "w") as f:
            f.write("+hugetlb")
    tree = (base, f"{base}/a", f"{base}/a/b")
    changed = hugetlb.release(base)
    assert changed == [f"{base}/a", base]
    assert [read(f"{c}/cgroup.subtree_control") for c in tree] == ["", "", ""]
    assert hugetlb.restore(changed) == []
    assert [read(f"{c}/cgroup.subtree_control") for c in tree] == ["hugetlb", "hugetlb", ""]


def test_v1_memory_and_swap_order_when_raising_and_lowering(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    mem = cg.paths["memory"]
    for limit, swap in ((64, 96), (256, 512), (32, 48), (128, -1)):
        cg.apply({"memory": {"limit": limit * MiB, "swap": swap * MiB if swap > 0 else -1}})
        assert read(f"{mem}/memory.limit_in_bytes") == str(limit * MiB)
        memsw = int(read(f"{mem}/memory.memsw.limit_in_bytes"))
        if swap > 0:
            assert memsw == swap * MiB
        else:
            assert memsw > 2**62
    cg.destroy()


def test_v1_freeze_and_thaw(made: Made, tmp_path: object) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    ticks = os.path.join(str(tmp_path), "ticks")
    proc = made.spawn_into(cg, f"while :; do echo x >> {ticks}; sleep 0.01; done")
    assert wait_until(lambda: os.path.exists(ticks))
    freezer = cg.paths["freezer"]
    cg.freeze()
    assert cg.frozen()
    assert read(f"{freezer}/freezer.state") == "FROZEN"
    assert not grows(ticks)
    cg.thaw()
    assert not cg.frozen()
    assert read(f"{freezer}/freezer.state") == "THAWED"
    assert grows(ticks)
    cg.kill_all(9)
    assert proc.wait(5) == -9
    cg.destroy()


def test_v1_kill_all_reaches_children_and_a_paused_cgroup(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    proc = made.spawn_into(cg, "sleep 30 & sleep 30 & wait")
    assert wait_until(lambda: len(cg.pids()) == 3)
    cg.freeze()
    cg.kill_all(9)
    assert proc.wait(5) == -9
    assert wait_until(lambda: cg.pids() == [])
    assert not cg.frozen()
    cg.destroy()
    assert not cgroup_dirs(made.name)


def test_v1_kill_all_with_sigterm_freezes_signals_and_thaws(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    proc = made.spawn()
    cg.add(proc.pid)
    cg.kill_all(15)
    assert proc.wait(5) == -15
    assert not cg.frozen()
    cg.destroy()


def test_v1_kill_all_keeps_a_paused_cgroup_paused_for_other_signals(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    proc = made.spawn()
    cg.add(proc.pid)
    cg.freeze()
    cg.kill_all(15)
    assert cg.frozen()
    assert proc.poll() is None
    cg.thaw()
    assert proc.wait(5) == -15
    cg.destroy()


def test_v1_pids_and_destroy_cover_sub_cgroups(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    proc = made.spawn()
    cg.add(proc.pid)
    for path in cg.dirs():
        os.mkdir(os.path.join(path, "inner"))
    with open(os.path.join(cg.paths["freezer"], "inner", "cgroup.procs"), "w") as f:
        f.write(str(proc.pid))
    assert cg.pids() == [proc.pid]
    cg.kill_all(9)
    proc.wait(5)
    cg.destroy()
    assert not cgroup_dirs(made.name)


def test_relative_and_empty_paths_land_under_our_own_cgroup(made: Made) -> None:
    own = own_cgroups()
    for cg in (open_cgroup(made.name, "ignored", False), open_cgroup(None, made.name, False)):
        for key in ("memory", "cpu", "pids"):
            expected = os.path.join(f"/sys/fs/cgroup/{key}", own[key].lstrip("/"), made.name)
            assert cg.paths[key] == expected
        assert "unified" not in cg.paths
    cg.create()
    proc = made.spawn()
    cg.add(proc.pid)
    assert cgroup_lines(proc.pid)["memory"] == os.path.join(own["memory"], made.name)
    cg.kill_all(9)
    proc.wait(5)
    cg.destroy()
    assert not cgroup_dirs(made.name)


def test_state_round_trip(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    again = load_cgroup(fastjson.loads(fastjson.dumps(cg.to_state())))
    assert (again.version, again.paths) == (1, cg.paths)
    v2 = open_v2(f"/{made.name}", UNIFIED)
    back = load_cgroup(fastjson.loads(fastjson.dumps(v2.to_state())))
    assert isinstance(back, V2Cgroup)
    assert (back.paths, back.root) == ({"": f"{UNIFIED}/{made.name}"}, UNIFIED)


def test_bad_values_are_spec_errors_before_any_write(made: Made) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit: must be an integer"),
        (
            {"memory": {"swappiness": 101}},
            "linux.resources.memory.swappiness: must be between 0 and 100",
        ),
        ({"pids": {"limit": 1.5}}, "linux.resources.pids.limit: must be an integer"),
        (
            {"unified": {"pids.max": "5"}},
            "linux.resources.unified: needs cgroup v2, but this host uses cgroup v1",
        ),
    ]
    for resources, text in cases:
        with pytest.raises(SpecError) as exc:
            cg.apply({"pids": {"limit": 7}, **resources})
        assert str(exc.value) == f"config.json: {text}"
    assert read(f"{cg.paths['pids']}/pids.max") == "max"
    cg.destroy()


def test_host_refusals_name_the_field_and_the_file(made: Made, hugetlb_v1: str) -> None:
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    cpuset, mem = cg.paths["cpuset"], cg.paths["memory"]
    with pytest.raises(OcirtError) as exc:
        cg.apply({"cpu": {"cpus": "99999"}})
    assert str(exc.value).startswith(f"linux.resources.cpu.cpus: writing '99999' to {cpuset}/cpuset.cpus: ")
    with pytest.raises(OcirtError) as exc:
        cg.apply({"memory": {"useHierarchy": False}})
    assert str(exc.value) == (
        f"linux.resources.memory.useHierarchy: writing '0' to {mem}/memory.use_hierarchy: Invalid argument"
    )
    with pytest.raises(OcirtError) as exc:
        cg.apply({"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]})
    assert str(exc.value) == (
        "linux.resources.hugepageLimits[0]: this host has no "
        f"{cg.paths['hugetlb']}/hugetlb.3MB.limit_in_bytes"
    )
    cg.destroy()


def test_unmounted_controller_fails_only_when_a_resource_needs_it(made: Made) -> None:
    mounts = hierarchies()
    candidates: list[tuple[str, dict[str, Any], str]] = [
        ("net_cls", {"network": {"classID": 1}}, "linux.resources.network.classID"),
        (
            "net_prio",
            {"network": {"priorities": [{"name": "lo", "priority": 1}]}},
            "linux.resources.network.priorities[0]",
        ),
        ("rdma", {"rdma": {"mlx5_0": {"hcaHandles": 1}}}, "linux.resources.rdma.mlx5_0"),
    ]
    missing = [c for c in candidates if c[0] not in mounts]
    if not missing:
        pytest.skip("net_cls, net_prio and rdma are all mounted on this host")
    cg = open_cgroup(f"/{made.name}", "ignored", False)
    cg.create()
    cg.apply({"pids": {"limit": 5}})
    for controller, resources, field in missing:
        with pytest.raises(OcirtError) as exc:
            cg.apply(resources)
        assert str(exc.value) == f"{field}: the {controller} controller is not mounted on this host"
    cg.destroy()


# --- v2, on the unified hierarchy of this hybrid host -----------------------------------


def test_v2_create_add_freeze_thaw_kill_destroy(made: Made, tmp_path: object) -> None:
    cg = open_v2(f"/{made.name}", UNIFIED)
    path = f"{UNIFIED}/{made.name}"
    assert (cg.version, cg.paths) == (2, {"": path})
    cg.create()
    assert os.path.isdir(path)
    ticks = os.path.join(str(tmp_path), "ticks")
    proc = made.spawn_into(cg, f"while :; do echo x >> {ticks}; sleep 0.01; done")
    assert cgroup_lines(proc.pid)[""] == f"/{made.name}"
    assert wait_until(lambda: os.path.exists(ticks))
    assert proc.pid in cg.pids()

    cg.freeze()
    assert cg.frozen()
    assert "frozen 1" in read(f"{path}/cgroup.events").splitlines()
    assert not grows(ticks)
    cg.thaw()
    assert not cg.frozen()
    assert "frozen 0" in read(f"{path}/cgroup.events").splitlines()
    assert grows(ticks)

    cg.kill_all(9)
    assert proc.wait(5) == -9
    assert wait_until(lambda: cg.pids() == [])
    cg.destroy()
    assert not os.path.exists(path)
    cg.destroy()


def test_v2_kill_all_sigterm_and_nested_path(made: Made) -> None:
    cg = open_v2(f"/{made.name}/a/b", UNIFIED)
    cg.create()
    proc = made.spawn_into(cg, "sleep 30 & wait")
    os.mkdir(f"{cg.dir}/leaf")
    assert wait_until(lambda: len(cg.pids()) == 2)
    cg.kill_all(15)
    assert proc.wait(5) == -15
    assert not cg.frozen()
    cg.kill_all(9)
    cg.destroy()
    assert not os.path.exists(cg.dir)
    assert os.path.isdir(f"{UNIFIED}/{made.name}/a")


def test_v2_relative_path_and_missing_controllers(made: Made) -> None:
    own = own_cgroups()[""]
    cg = open_v2(made.name, UNIFIED)
    assert cg.dir == os.path.join(UNIFIED, own.lstrip("/"), made.name)
    cg = open_v2(f"/{made.name}", UNIFIED)
    cg.create()
    with pytest.raises(OcirtError) as exc:
        cg.apply({"memory": {"limit": 64 * MiB}})
    assert str(exc.value) == (
        f"linux.resources.memory.limit: {cg.dir}/memory.max does not exist: "
        "the memory controller is not enabled there"
    )
    with pytest.raises(OcirtError) as exc:
        cg.apply({"unified": {"pids.max": "10"}})
    assert str(exc.value).startswith(f"linux.resources.unified.pids.max: {cg.dir}/pids.max ")
    cg.apply({"unified": {"cgroup.max.descendants": "3"}})
    assert read(f"{cg.dir}/cgroup.max.descendants") == "3"
    cg.destroy()


def test_v2_apply_kernel_refusal(made: Made) -> None:
    cg = open_v2(f"/{made.name}", UNIFIED)
    cg.create()
    with pytest.raises(OcirtError) as exc:
        cg.apply({"unified": {"cgroup.max.depth": "lots"}})
    assert str(exc.value) == (
        f"linux.resources.unified.cgroup.max.depth: writing 'lots' to "
        f"{cg.dir}/cgroup.max.depth: Invalid argument"
    )
    cg.destroy()


# --- paths and --systemd-cgroup ----------------------------------------------------------


def test_clean_path_keeps_paths_inside_their_start() -> None:
    assert clean_path("../../x") == "x"
    assert clean_path("a/./b/../c") == "a/c"
    assert clean_path("/a/../../b") == "/b"
    assert clean_path("//a") == "/a"
    for bad in ("/", "..", "."):
        with pytest.raises(SpecError) as exc:
            clean_path(bad)
        assert str(exc.value) == f"config.json: linux.cgroupsPath: {bad!r} does not name a cgroup of its own"


def test_systemd_driver_needs_systemd() -> None:
    hostfacts.require(not hostfacts.systemd_running(), "systemd runs here (/run/systemd/system)")
    with pytest.raises(OcirtError) as exc:
        open_cgroup("system.slice:ocirt:abc", "abc", True)
    assert str(exc.value) == (
        "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system)"
    )


def test_systemd_path_format_and_slice_expansion() -> None:
    with pytest.raises(SpecError) as exc:
        open_cgroup("/not/systemd", "abc", True)
    assert str(exc.value) == (
        "config.json: linux.cgroupsPath: expected slice:prefix:name for --systemd-cgroup, got '/not/systemd'"
    )
    assert systemd_path("system.slice:docker:abc", "x") == "/system.slice/docker-abc.scope"
    assert systemd_path("a-b-c.slice:p:n", "x") == "/a.slice/a-b.slice/a-b-c.slice/p-n.scope"
    assert systemd_path(":crio:n", "x") == "/system.slice/crio-n.scope"
    assert systemd_path("-.slice:p:n", "x") == "/p-n.scope"
    assert systemd_path("", "abc") == "/system.slice/ocirt-abc.scope"
    with pytest.raises(SpecError) as exc:
        systemd_path("machine.slice:p:my.slice", "x")
    assert str(exc.value) == (
        "config.json: linux.cgroupsPath: --systemd-cgroup: "
        "the container's unit must be a scope, not 'my.slice'"
    )
    assert expand_slice("user-1000.slice") == "/user.slice/user-1000.slice"
    for bad in ("a--b.slice", "-a.slice", "a/b.slice", "nope"):
        with pytest.raises(SpecError) as exc:
            expand_slice(bad)
        assert str(exc.value) == f"config.json: linux.cgroupsPath: invalid systemd slice name {bad!r}"


def test_cgroup_is_the_common_type() -> None:
    assert isinstance(open_cgroup("/x", "x", False), Cgroup)
    assert isinstance(open_v2("/x", UNIFIED), Cgroup)
