"""``ocirtctl`` containers end to end: real images from a local registry, real shims and
runtime, the state machine, restart policies, stop escalation, resources read back from
the cgroup files, stats, exec, logs, cp, and errors. Every test ends with a leak check."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator

import pytest
from ocirt.foundation.procfs import start_ticks as process_start_time
from support import hostfacts
from support.ctl import Manager, checked, manager


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("containers"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def wait_for(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def cgroup_file(pid: int, controller: str, name: str) -> str:
    hostfacts.require(hostfacts.cgroup_v1_hybrid(), "no cgroup v1 hybrid layout to read v1 files from")
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open(os.path.join("/sys/fs/cgroup", controller, path.lstrip("/"), name)) as g:
                    return g.read().strip()
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def test_run_foreground_status_output_and_rm(ctl: Manager) -> None:
    done = ctl(
        "run",
        "--rm",
        "--network",
        "none",
        ctl.httpd,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert ctl.ids() == []


def test_network_none_has_only_loopback(ctl: Manager) -> None:
    done = ctl("run", "--rm", "--network", "none", ctl.httpd, "ls", "/sys/class/net")
    assert done.stdout.split() == ["lo"]


def test_state_machine(ctl: Manager) -> None:
    cid = ctl("create", "--name", "sm", "--network", "none", ctl.httpd, "sleep", "60").stdout.strip()
    assert ctl.inspect("sm")["State"]["Status"] == "created"
    ctl("start", "sm")
    state = ctl.inspect(cid)["State"]
    assert state["Status"] == "running" and state["Pid"] > 0
    ctl("pause", "sm")
    assert ctl.inspect("sm")["State"]["Status"] == "paused"
    assert cgroup_file(state["Pid"], "freezer", "freezer.state") == "FROZEN"
    ctl("unpause", "sm")
    assert ctl.inspect("sm")["State"]["Status"] == "running"
    assert ctl("rm", "sm", check=False).returncode != 0  # running: refused without -f
    ctl("kill", "sm")
    wait_for(lambda: ctl.inspect("sm")["State"]["Status"] == "exited")
    assert ctl.inspect("sm")["State"]["ExitCode"] == 137
    assert "Exited (137)" in ctl("ps", "-a").stdout
    ctl("start", "sm")
    first = ctl.inspect("sm")["State"]["Pid"]
    ctl("restart", "-t", "1", "sm")
    state = ctl.inspect("sm")["State"]
    assert state["Status"] == "running" and state["Pid"] != first
    ctl("create", "--name", "sa", "--network", "none", ctl.httpd, "sh", "-c", "echo attached; exit 5")
    done = ctl("start", "-a", "sa", check=False)
    assert (done.returncode, done.stdout) == (5, "attached\n")


def test_restart_on_failure_stops_after_three(ctl: Manager) -> None:
    ctl(
        "run",
        "-d",
        "--name",
        "of",
        "--network",
        "none",
        "--restart",
        "on-failure:3",
        ctl.httpd,
        "sh",
        "-c",
        "exit 2",
    )
    wait_for(
        lambda: ctl.inspect("of")["RestartCount"] == 3 and ctl.inspect("of")["State"]["Status"] == "exited"
    )
    time.sleep(1)
    doc = ctl.inspect("of")
    assert (doc["RestartCount"], doc["State"]["Status"], doc["State"]["ExitCode"]) == (3, "exited", 2)


def test_restart_always_but_never_after_stop(ctl: Manager) -> None:
    ctl(
        "run",
        "-d",
        "--name",
        "al",
        "--network",
        "none",
        "--restart",
        "always",
        ctl.httpd,
        "sh",
        "-c",
        "sleep 0.2",
    )
    wait_for(lambda: ctl.inspect("al")["RestartCount"] >= 2)
    ctl("stop", "-t", "5", "al")
    count = ctl.inspect("al")["RestartCount"]
    time.sleep(1.5)
    doc = ctl.inspect("al")
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count


def test_stop_escalates_to_sigkill_after_timeout(ctl: Manager) -> None:
    ctl(
        "run",
        "-d",
        "--name",
        "stubborn",
        "--network",
        "none",
        ctl.httpd,
        "sh",
        "-c",
        "trap '' TERM; sleep 600",
    )
    start = time.monotonic()
    ctl("stop", "-t", "1", "stubborn")
    took = time.monotonic() - start
    assert 1.0 <= took < 6, took
    assert ctl.inspect("stubborn")["State"]["ExitCode"] == 137


def test_init_forwards_stop_signal(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "withinit", "--init", "--network", "none", ctl.httpd)
    procs = ctl("top", "withinit").stdout
    assert "ocirt-init" in procs and "httpd" in procs
    start = time.monotonic()
    ctl("stop", "-t", "10", "withinit")
    assert time.monotonic() - start < 5
    assert ctl.inspect("withinit")["State"]["ExitCode"] == 143


def test_resource_flags_reach_the_cgroup_files(ctl: Manager) -> None:
    ctl(
        "run", "-d", "--name", "res", "--network", "none", "-m", "64m", "--memory-reservation", "32m",
        "--cpus", "0.5", "--cpu-shares", "512", "--pids-limit", "50", "--blkio-weight", "300",
        "--oom-score-adj", "100", ctl.httpd, "sleep", "60",
    )  # fmt: skip
    pid = ctl.inspect("res")["State"]["Pid"]
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(pid, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgroup_file(pid, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgroup_file(pid, "cpu", "cpu.shares") == "512"
    assert cgroup_file(pid, "pids", "pids.max") == "50"
    assert (
        cgroup_file(pid, "blkio", "blkio.bfq.weight" if _has_bfq(pid) else "blkio.weight").split()[-1]
        == "300"
    )
    with open(f"/proc/{pid}/oom_score_adj") as f:
        assert f.read().strip() == "100"
    disk = _block_device()
    rdev = os.stat(disk).st_rdev
    throttled = f"{os.major(rdev)}:{os.minor(rdev)} {1 << 20}"
    ctl("update", "-m", "96m", "--pids-limit", "60", "--device-read-bps", f"{disk}:1mb", "res")
    assert throttled in cgroup_file(pid, "blkio", "blkio.throttle.read_bps_device").splitlines()
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert cgroup_file(pid, "pids", "pids.max") == "60"


def _block_device() -> str:
    """The first real disk (not a loop or RAM device) to throttle."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")) and os.path.exists(f"/dev/{name}"):
            return f"/dev/{name}"
    pytest.skip("not on this host: no disk (other than loop or RAM devices) to throttle")


def _has_bfq(pid: int) -> bool:
    try:
        cgroup_file(pid, "blkio", "blkio.bfq.weight")
    except OSError:
        return False
    return True


def test_stats_match_the_cgroup_files(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "st", "--network", "none", "-m", "128m", "--pids-limit", "40", ctl.httpd,
        "sh", "-c", "sleep 600 & sleep 600 & wait")  # fmt: skip
    pid = ctl.inspect("st")["State"]["Pid"]
    wait_for(lambda: cgroup_file(pid, "pids", "pids.current") == "3")
    row = json.loads(ctl("stats", "--no-stream", "--format", "json", "st").stdout)[0]
    usage = int(cgroup_file(pid, "memory", "memory.usage_in_bytes"))
    assert row["MemLimit"] == int(cgroup_file(pid, "memory", "memory.limit_in_bytes")) == 128 << 20
    assert abs(row["MemUsage"] - usage) <= 256 << 10, (row["MemUsage"], usage)
    assert row["PIDs"] == 3
    assert 0 <= row["CPUPerc"] < 50


def test_exec_top_logs_wait_rename_and_ps(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "box", "--network", "none", "-l", "team=a", "-e", "FOO=bar", ctl.httpd,
        "sh", "-c", "for i in 1 2 3; do echo line$i; done; sleep 600")  # fmt: skip
    assert ctl("exec", "box", "sh", "-c", "echo $FOO; exit 4", check=False).returncode == 4
    assert (
        ctl("exec", "-e", "X=1", "-w", "/tmp", "box", "sh", "-c", "echo $X $FOO $(pwd)").stdout
        == "1 bar /tmp\n"
    )
    assert ctl("exec", "-u", "app", "box", "id", "-u").stdout == "1000\n"
    wait_for(lambda: "line3" in ctl("logs", "box").stdout)
    assert ctl("logs", "--tail", "2", "box").stdout == "line2\nline3\n"
    stamped = ctl("logs", "-t", "--tail", "1", "box").stdout
    assert stamped.endswith("Z line3\n") and stamped.startswith("20")
    assert ctl("logs", "--since", "1h", "box").stdout.count("line") == 3
    assert ctl("ps", "-q", "--filter", "label=team=a").stdout.strip() == ctl.inspect("box")["Id"][:12]
    assert ctl("ps", "-q", "--filter", "label=team=b").stdout.strip() == ""
    ctl("rename", "box", "box2")
    rows = json.loads(ctl("ps", "--format", "json", "--filter", "name=box2").stdout)
    assert [r["Names"] for r in rows] == ["box2"]
    ctl("kill", "-s", "KILL", "box2")
    assert ctl("wait", "box2").stdout.strip() == "137"
    assert ctl("ps", "-q", "--filter", "status=exited").stdout.strip() != ""


def test_cp_both_ways_stays_inside_the_rootfs(ctl: Manager, tmp_path: object) -> None:
    ctl(
        "run",
        "-d",
        "--name",
        "cpbox",
        "--network",
        "none",
        ctl.httpd,
        "sh",
        "-c",
        "ln -s /etc /tmp/evil; sleep 600",
    )
    wait_for(lambda: ctl("exec", "cpbox", "test", "-L", "/tmp/evil", check=False).returncode == 0)
    out = os.path.join(str(tmp_path), "passwd")
    ctl("cp", "cpbox:/tmp/evil/passwd", out)
    with open(out) as f:
        assert "app:x:1000" in f.read()  # the image's passwd, not the host's
    src = os.path.join(str(tmp_path), "planted")
    with open(src, "w") as f:
        f.write("from the host\n")
    ctl("cp", src, "cpbox:/tmp/evil/planted")
    assert not os.path.exists("/etc/planted")
    assert ctl("exec", "cpbox", "cat", "/etc/planted").stdout == "from the host\n"
    tree = os.path.join(str(tmp_path), "tree")
    os.makedirs(os.path.join(tree, "sub"))
    with open(os.path.join(tree, "sub", "f"), "w") as f:
        f.write("deep\n")
    ctl("cp", tree, "cpbox:/srv")
    assert ctl("exec", "cpbox", "cat", "/srv/sub/f").stdout == "deep\n"
    back = os.path.join(str(tmp_path), "back")
    ctl("cp", "cpbox:/srv", back)
    with open(os.path.join(back, "sub", "f")) as f:
        assert f.read() == "deep\n"


def test_cp_through_binds_links_and_contents(ctl: Manager, tmp_path: object) -> None:
    """docker cp's rules: a bind mount's path is its host source, ``SRC/.`` copies the
    contents, a symlink inside a copied tree stays a link, mode and mtime are kept."""
    bind = os.path.join(str(tmp_path), "bind")
    os.mkdir(bind)
    script = "mkdir -p /opt/t && echo x > /opt/t/x && ln -s x /opt/t/l && chmod 0751 /opt/t/x; sleep 600"
    ctl("run", "-d", "--name", "cpbind", "-v", f"{bind}:/mnt", ctl.httpd, "sh", "-c", script)
    wait_for(lambda: ctl("exec", "cpbind", "test", "-L", "/opt/t/l", check=False).returncode == 0)
    tree = os.path.join(str(tmp_path), "tree")
    os.mkdir(tree)
    with open(os.path.join(tree, "a"), "w") as f:
        f.write("a\n")
    os.utime(os.path.join(tree, "a"), (1000000000, 1000000000))
    ctl("cp", f"{tree}/.", "cpbind:/mnt")
    with open(os.path.join(bind, "a")) as f:
        assert f.read() == "a\n"
    assert os.stat(os.path.join(bind, "a")).st_mtime == 1000000000
    back = os.path.join(str(tmp_path), "back")
    ctl("cp", "cpbind:/opt/t", back)
    assert os.readlink(os.path.join(back, "l")) == "x"
    assert stat.S_IMODE(os.stat(os.path.join(back, "x")).st_mode) == 0o751
    hosts = os.path.join(str(tmp_path), "hosts")
    ctl("cp", "cpbind:/etc/hosts", hosts)
    with open(hosts) as f:
        assert "localhost" in f.read()
    missing = ctl("cp", "cpbind:/no/such", back, check=False)
    assert missing.returncode != 0
    assert missing.stderr.count("\n") == 1 and "/no/such" in missing.stderr, missing.stderr


# The container swaps /tmp/d between a directory of its own and a symlink to a host
# directory (its absolute host path means nothing inside), as fast as it can. The paths
# copied go one level deeper, so that the swapped component is never the last one.
SWAPPER = """
mkdir -p /tmp/real/sub && echo container > /tmp/real/sub/f && mv /tmp/real /tmp/d && touch /tmp/ready
while :; do mv /tmp/d /tmp/real; ln -s {host} /tmp/d; rm /tmp/d; mv /tmp/real /tmp/d; done
"""


def test_cp_never_reaches_the_host_while_the_container_swaps_a_component(
    ctl: Manager, tmp_path: object
) -> None:
    """CVE-2018-15664 class: a path component the container swaps for a symlink between the
    manager's resolution and its open must not redirect ``cp`` to the host, either way."""
    host = os.path.join(str(tmp_path), "host")
    os.makedirs(os.path.join(host, "sub"))
    with open(os.path.join(host, "sub", "f"), "w") as f:
        f.write("host secret\n")
    script = SWAPPER.format(host=host)
    ctl("run", "-d", "--name", "swapper", "--network", "none", ctl.httpd, "sh", "-c", script)
    wait_for(lambda: ctl("exec", "swapper", "test", "-e", "/tmp/ready", check=False).returncode == 0)
    src = os.path.join(str(tmp_path), "planted")
    with open(src, "w") as f:
        f.write("from the host\n")
    out = os.path.join(str(tmp_path), "out")
    read, written = [], []
    for n in range(40):
        if ctl("cp", "swapper:/tmp/d/sub/f", out, check=False).returncode == 0:
            with open(out) as f:
                read.append(f.read())
            os.unlink(out)
        if ctl("cp", src, f"swapper:/tmp/d/sub/planted{n}", check=False).returncode == 0:
            written.append(n)
    stolen = read.count("host secret\n")
    leaked = sorted(set(os.listdir(os.path.join(host, "sub"))) - {"f"})
    assert (stolen, leaked) == (0, []), (
        f"of 40 rounds, cp out read the host file {stolen} times, cp in wrote {leaked}"
    )
    assert read and written, "no round found /tmp/d a directory: the race proved nothing"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-m", "lots"], "--memory: invalid size 'lots'"),
        (["--restart", "sometimes"], "--restart: unknown policy 'sometimes'"),
        (["--cpus", "0"], "--cpus: '0' is out of range"),
        (["--ulimit", "bogus=1"], "--ulimit: unknown limit 'bogus'"),
        (["-v", "rel/path:/x"], "-v: invalid volume name 'rel/path'"),
        (["--network", "nosuchnet"], "nosuchnet"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(ctl: Manager, args: list[str], needle: str) -> None:
    done = ctl("run", "--rm", *args, ctl.httpd, "true", check=False)
    assert done.returncode == 125
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ctl.ids() == []


def test_security_and_process_flags(ctl: Manager, tmp_path: object) -> None:
    profile = os.path.join(str(tmp_path), "deny-mkdir.json")
    with open(profile, "w") as f:
        json.dump(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            },
            f,
        )
    script = (
        "touch /x 2>/dev/null || echo ro; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ulimit -n;"
        " cat /proc/sys/net/ipv4/ip_forward; touch /scratch/y && echo tmpfs; hostname;"
        " echo hi > /dev/mynull && echo dev; mkdir /scratch/d 2>/dev/null || echo nomkdir;"
        " echo $GREETING; pwd; id -u"
    )
    done = ctl(
        "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--security-opt", f"seccomp={profile}",
        "--ulimit", "nofile=512:1024", "--sysctl", "net.ipv4.ip_forward=1", "--tmpfs", "/scratch",
        "--device", "/dev/null:/dev/mynull", "-h", "myhost", "-e", "GREETING=hi there",
        "-w", "/tmp", "-u", "app", "--entrypoint", "sh", ctl.httpd, "-c", script,
    )  # fmt: skip
    assert done.stdout.splitlines() == [
        "ro",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "512",
        "1",
        "tmpfs",
        "myhost",
        "dev",
        "nomkdir",
        "hi there",
        "/tmp",
        "1000",
    ]


def test_oom_kill_is_reported(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "hog", "--network", "none", "-m", "16m", "--memory-swap", "16m", ctl.httpd,
        "tail", "/dev/zero")  # fmt: skip
    wait_for(lambda: ctl.inspect("hog")["State"]["Status"] == "exited")
    state = ctl.inspect("hog")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    assert "(OOM killed)" in ctl("ps", "-a", "--filter", "name=hog").stdout


def test_logs_follow_until_exit(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "talker", "--network", "none", "--log-driver", "json-file", ctl.httpd,
        "sh", "-c", "echo one; sleep 1; echo two; echo three >&2")  # fmt: skip
    done = ctl("logs", "-f", "talker", timeout=30)
    assert (done.stdout, done.stderr) == ("one\ntwo\n", "three\n")


def test_attach_stdin_and_detach_keys(ctl: Manager) -> None:
    ctl("run", "-d", "-i", "--name", "echoer", "--network", "none", ctl.httpd, "cat")
    done = ctl("attach", "echoer", input="hello\n\x10\x11", timeout=30)  # then Ctrl-p Ctrl-q
    assert done.returncode == 0
    wait_for(lambda: ctl("logs", "echoer").stdout == "hello\n")  # the text before the keys went in
    assert ctl.inspect("echoer")["State"]["Status"] == "running"  # detaching leaves it running
    done = ctl("attach", "echoer", input="bye\n", timeout=30)  # end of input closes cat's stdin
    assert (done.returncode, done.stdout) == (0, "bye\n")
    assert ctl.inspect("echoer")["State"]["Status"] == "exited"
    assert ctl("logs", "echoer").stdout == "hello\nbye\n"
    done = ctl(
        "run", "--rm", "-i", "--network", "none", ctl.httpd, "sh", "-c", "read x; echo got $x", input="abc\n"
    )
    assert done.stdout == "got abc\n"


def test_reused_pid_is_not_mistaken_for_the_container(ctl: Manager) -> None:
    """Shim and container killed, and their pid then held by an unrelated process: the record
    must say exited, and ``rm -f`` must remove it without touching that process. Forcing the
    kernel to reuse a pid is slow and racy, so the record is pointed at a live process this
    test started after the container (so with another start time): what reuse looks like."""
    ctl("run", "-d", "--name", "reused", "--network", "none", ctl.httpd, "sleep", "600")
    pid = ctl.inspect("reused")["State"]["Pid"]
    with open(f"/proc/{pid}/stat") as f:
        shim = int(f.read().rpartition(")")[2].split()[1])
    os.kill(shim, 9)
    os.kill(pid, 9)
    wait_for(lambda: process_start_time(pid) is None)  # gone, or a zombie nobody reaps yet
    other = subprocess.Popen(["sleep", "600"])
    try:
        conn = sqlite3.connect(os.path.join(ctl.root, "ocirt.db"), timeout=30)
        with conn:
            conn.execute("UPDATE containers SET pid=? WHERE name='reused'", (other.pid,))
        conn.close()
        state = ctl.inspect("reused")["State"]
        assert (state["Status"], state["Running"]) == ("exited", False), state
        row = [line for line in ctl("ps", "-a").stdout.splitlines() if line.endswith("reused")]
        assert len(row) == 1 and " Up " not in row[0] and "Exited" in row[0], row
        ctl("rm", "-f", "reused", timeout=30)
        assert "reused" not in ctl("ps", "-a").stdout
        assert other.poll() is None, "rm -f signalled the process that holds the recorded pid"
    finally:
        other.kill()
        other.wait()


def test_killed_shim_is_reported_honestly_and_rm_cleans_up(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "orphan", "--network", "none", ctl.httpd, "sleep", "600")
    pid = ctl.inspect("orphan")["State"]["Pid"]
    with open(f"/proc/{pid}/stat") as f:
        shim = int(f.read().rpartition(")")[2].split()[1])
    with open(f"/proc/{shim}/cmdline", "rb") as f:
        assert b"ocirt-shim" in f.read()
    os.kill(shim, 9)
    time.sleep(0.5)
    assert ctl.inspect("orphan")["State"]["Status"] == "running"  # the process still runs
    ctl("stop", "-t", "1", "orphan")
    state = ctl.inspect("orphan")["State"]
    # unknown, not invented: docker's int field holds its 255 for an exit nobody saw, Error says why
    assert (state["Status"], state["ExitCode"]) == ("exited", 255) and "unknown" in state["Error"]
    assert "Exited (?)" in ctl("ps", "-a").stdout
