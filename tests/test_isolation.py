"""What a container sees of itself: namespaces, mounts, ids, limits and process settings."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from typing import Any

import pytest
from conftest import Runtime
from support import hostfacts


def run_out(rt: Runtime, script: str, edit: Any = None, *flags: str) -> str:
    bundle = rt.bundle(["sh", "-c", script], edit)
    res = rt("run", *flags, "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_hostname_domainname_and_pid_1(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["hostname"], c["domainname"] = "box1", "example.test"

    out = run_out(rt, "hostname; cat /proc/sys/kernel/domainname; echo $$", edit)
    assert out.split() == ["box1", "example.test", "1"]


def test_new_network_namespace_has_only_loopback_up(rt: Runtime) -> None:
    out = run_out(
        rt, "ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo ok"
    )
    assert out.split() == ["lo", "unknown", "ok"]


def test_own_mount_table(rt: Runtime) -> None:
    out = run_out(rt, "cat /proc/self/mountinfo")
    targets = [line.split()[4] for line in out.splitlines()]
    assert targets[0] == "/"
    assert "/proc" in targets and "/dev" in targets and "/sys" in targets
    assert not any(t.startswith(("/work", "/run/ocirt", "/tmp/pytest")) for t in targets)


def test_process_sees_only_its_own_pid_namespace(rt: Runtime) -> None:
    out = run_out(rt, "ls /proc | grep -c '^[0-9]'")
    assert int(out) <= 3


def test_readonly_root_refuses_writes(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["root"]["readonly"] = True

    out = run_out(rt, "touch /newfile 2>&1; echo rc=$?; touch /tmp/x 2>&1; echo rc=$?", edit)
    assert "Read-only file system" in out
    assert out.count("rc=1") == 2


def test_user_process_settings(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        p = c["process"]
        p["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 0o027}
        p["env"].append("GREETING=hi there")
        p["cwd"] = "/work/dir"
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}]
        p["oomScoreAdj"] = 123
        p["noNewPrivileges"] = True

    script = (
        "id -u; id -g; id -G; umask; echo $GREETING; pwd; ulimit -n; ulimit -Hn; "
        "cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status"
    )
    lines = run_out(rt, script, edit).splitlines()
    assert lines[0:3] == ["1000", "1001", "1001 5 6"]
    assert lines[3] == "0027"
    assert lines[4:6] == ["hi there", "/work/dir"]
    assert lines[6:8] == ["512", "1024"]
    assert lines[8] == "123"
    assert lines[9].split() == ["NoNewPrivs:", "1"]


def test_capabilities_are_applied(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
        c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}

    out = run_out(rt, "grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status", edit)
    expected = f"{(1 << 5) | (1 << 10):016x}"
    for line in out.splitlines():
        assert line.split()[1] == expected, out


def test_sysctl_in_own_network_namespace(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    assert run_out(rt, "cat /proc/sys/net/ipv4/ip_forward", edit).strip() == "1"


def test_net_sysctl_in_a_joined_network_namespace(rt: Runtime) -> None:
    """podman's stock config: the netns it made, by path, and a net.* sysctl for it."""
    name = f"ocirt-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:

        def edit(c: dict[str, Any]) -> None:
            spaces = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
            c["linux"]["namespaces"] = [*spaces, {"type": "network", "path": f"/run/netns/{name}"}]
            c["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 2147483647"}

        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            host_before = f.read()
        out = run_out(rt, "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ping_group_range", edit)
        seen = subprocess.run(
            ["ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ping_group_range"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            assert f.read() == host_before, "the host's own value changed"
        assert out.splitlines()[0] == f"net:[{os.stat(f'/run/netns/{name}').st_ino}]"
        assert out.splitlines()[1].split() == seen.split() == ["0", "2147483647"]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_masked_and_readonly_paths(rt: Runtime) -> None:
    out = run_out(rt, "cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/ostype 2>&1; echo rc=$?")
    assert out.split()[0] == "0"
    assert "rc=1" in out


def test_default_devices(rt: Runtime) -> None:
    script = (
        "ls -l /dev/null /dev/zero /dev/urandom | cut -c1; "
        "readlink /dev/ptmx; readlink /dev/fd; head -c4 /dev/zero | wc -c"
    )
    out = run_out(rt, script)
    lines = out.split()
    assert lines[0:3] == ["c", "c", "c"]
    assert lines[3:5] == ["pts/ptmx", "/proc/self/fd"]
    assert lines[5] == "4"


def test_no_host_fds_leak_and_preserve_fds(rt: Runtime) -> None:
    import subprocess

    bundle = rt.bundle(["sh", "-c", "ls /proc/self/fd"])
    r, w = os.pipe()
    leaked = os.open("/etc/hostname", os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        res = subprocess.run(
            [
                os.path.join(os.path.dirname(__import__("sys").executable), "ocirt"),
                "--root",
                rt.root,
                "run",
                "--preserve-fds",
                "1",
                "--bundle",
                bundle,
                rt.new_id(),
            ],
            capture_output=True,
            text=True,
            pass_fds=(r,) if r == 3 else (),
            timeout=30,
        )
    finally:
        os.close(r)
        os.close(w)
        os.close(leaked)
    assert res.returncode == 0, res.stderr
    fds = sorted(int(x) for x in res.stdout.split())
    assert fds[:3] == [0, 1, 2]
    assert len(fds) <= 5, f"unexpected fds inside: {fds}"


@hostfacts.V1_HYBRID
def test_memory_pids_cpu_limits_seen_in_host_cgroups(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {
            "memory": {"limit": 64 * 1024 * 1024},
            "pids": {"limit": 42},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        }
        c["linux"]["cgroupsPath"] = f"/ocirt-test/{cid}"

    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "1000"], edit)
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    base = f"ocirt-test/{cid}"

    def read(ctrl: str, name: str) -> str:
        with open(f"/sys/fs/cgroup/{ctrl}/{base}/{name}") as f:
            return f.read().strip()

    assert read("memory", "memory.limit_in_bytes") == str(64 * 1024 * 1024)
    assert read("pids", "pids.max") == "42"
    assert read("cpu", "cpu.shares") == "512"
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    pid = rt.state(cid)["pid"]
    assert str(pid) in read("memory", "cgroup.procs").split()
    assert rt("delete", "--force", cid).returncode == 0
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{base}")
    os.rmdir("/sys/fs/cgroup/memory/ocirt-test") if os.path.isdir(
        "/sys/fs/cgroup/memory/ocirt-test"
    ) else None


def test_pids_limit_is_enforced(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"pids": {"limit": 4}}

    bundle = rt.bundle(["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 5 & done; echo all-forked"], edit)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert "can't fork" in res.stdout + res.stderr
    assert "all-forked" not in res.stdout


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_user_namespace_maps_root_to_unprivileged_host_uid(rt: Runtime, open_dir: str) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cid = rt.new_id()
    script = "cat /proc/self/uid_map /proc/self/gid_map > /tmp/maps; id -u >> /tmp/maps; exec sleep 1000"
    bundle = rt.bundle(["sh", "-c", script], edit, name=os.path.join(open_dir, "b"))
    os.chmod(os.path.join(bundle, "rootfs/tmp"), 0o1777)
    res = rt("run", "-d", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    pid = rt.state(cid)["pid"]
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == ["100000"] * 4
    deadline = time.monotonic() + 5
    maps = os.path.join(bundle, "rootfs/tmp/maps")
    while not (os.path.exists(maps) and read(maps).count("\n") == 3):
        assert time.monotonic() < deadline, "container never wrote its maps"
        time.sleep(0.02)
    with open(maps) as f:
        assert f.read().split() == ["0", "100000", "65536", "0", "100000", "65536", "0"]


def test_join_namespaces_of_another_container(rt: Runtime) -> None:
    first = rt.new_id()

    def name_it(c: dict[str, Any]) -> None:
        c["hostname"] = "shared-host"

    a = rt.bundle(["sleep", "1000"], name_it)
    assert rt("run", "-d", "--bundle", a, first).returncode == 0
    pid = rt.state(first)["pid"]

    def join(c: dict[str, Any]) -> None:
        del c["hostname"]
        c["linux"]["namespaces"] = [
            {"type": "mount"},
            {"type": "pid", "path": f"/proc/{pid}/ns/pid"},
            {"type": "network", "path": f"/proc/{pid}/ns/net"},
            {"type": "uts", "path": f"/proc/{pid}/ns/uts"},
            {"type": "ipc", "path": f"/proc/{pid}/ns/ipc"},
        ]

    script = (
        "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/uts; ps -o pid,comm | grep -c sleep"
    )
    out = run_out(rt, script, join)
    lines = out.split()
    assert lines[0] == "shared-host"
    assert lines[1] == os.readlink(f"/proc/{pid}/ns/net")
    assert lines[2] == os.readlink(f"/proc/{pid}/ns/uts")
    assert lines[3] == "1", "the first container's sleep should be visible in the shared pid ns"


def test_cgroup_namespace(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"].append({"type": "cgroup"})

    out = run_out(rt, "cat /proc/self/cgroup", edit)
    for line in out.splitlines():
        assert line.rsplit(":", 1)[1] == "/", out


def test_time_namespace_offsets(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 864000, "nanosecs": 0}}

    uptime = float(run_out(rt, "cut -d' ' -f1 /proc/uptime", edit))
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert 864000 - 5 < uptime - host < 864000 + 5


def test_no_pivot(rt: Runtime) -> None:
    assert run_out(rt, "cat /etc/passwd | head -1", None, "--no-pivot").startswith("root:x:0:0")


def test_bind_mount_from_bundle_and_symlink_escape_stays_inside(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["mounts"].append(
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]}
        )
        c["mounts"].append({"destination": "/evil/inner", "type": "tmpfs", "source": "tmpfs"})

    bundle = rt.bundle(
        [
            "sh",
            "-c",
            "cat /data/hello; echo x > /data/hello 2>&1 || echo ro; grep -c inner /proc/self/mountinfo",
        ],
        edit,
    )
    os.makedirs(os.path.join(bundle, "data"))
    with open(os.path.join(bundle, "data/hello"), "w") as f:
        f.write("hi\n")
    outside = os.path.join(rt.workdir, "outside")
    os.makedirs(outside)
    os.symlink(outside, os.path.join(bundle, "rootfs/evil"))
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["hi", "ro", "1"]
    assert os.listdir(outside) == [], "a mount escaped the rootfs through a symlink"


def _host_root_is_shared() -> bool:
    with open("/proc/self/mountinfo") as f:
        root = next(line for line in f if line.split()[4] == "/")
    return "shared:" in root


@pytest.mark.parametrize("propagation", ["rprivate", "rslave", "rshared"])
def test_rootfs_propagation(rt: Runtime, propagation: str) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["rootfsPropagation"] = propagation

    root = run_out(rt, "head -1 /proc/self/mountinfo", edit)
    fields = root.split(" - ")[0].split()[6:]
    tags = {f.split(":")[0] for f in fields}
    if propagation == "rprivate":
        assert tags == set(), root
    elif propagation == "rslave":
        assert tags == ({"master"} if _host_root_is_shared() else set()), root
    else:
        assert "shared" in tags, root


def test_state_while_running_has_pid_and_annotations(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["annotations"] = {"org.example.key": "value"}

    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "1000"], edit)
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    st = rt.state(cid)
    assert st["status"] == "running" and st["annotations"] == {"org.example.key": "value"}
    assert isinstance(st["pid"], int) and st["pid"] > 0


@pytest.mark.parametrize("flags", [(), ("--no-new-keyring",)])
def test_session_keyring(rt: Runtime, flags: tuple[str, ...]) -> None:
    """runc gives each container a session keyring of its own, named after it."""
    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "1000"])
    res = rt("create", *flags, "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    with open("/proc/keys") as f:
        keys = f.read()
    assert (f"_ses.{cid}" in keys) == (not flags)
