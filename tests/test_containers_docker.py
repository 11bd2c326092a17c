"""docker's command line in real containers: the commands and flags docker scripts use,
each checked by its effect inside the container or on the host (the mechanical comparison
of the flag lists is tests/test_docker_cli.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.ctl import Manager, checked, manager


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("docker"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def test_container_group_has_every_container_command(ctl: Manager) -> None:
    """``docker container run|exec|logs|inspect|rename|rm ...`` are the top-level commands."""
    ctl("container", "run", "-d", "--name", "grouped", ctl.httpd)
    assert ctl("container", "exec", "grouped", "cat", "/var/www/index.html").stdout == "hello from ocirt\n"
    ctl("container", "rename", "grouped", "regrouped")
    assert (
        ctl("container", "inspect", "-f", "{{.Name}}", "regrouped").stdout.strip().lstrip("/") == "regrouped"
    )
    ctl("container", "stop", "-t", "0", "regrouped")
    assert ctl("container", "ls", "-a", "-q", "--filter", "name=regrouped").stdout.strip()
    ctl("container", "rm", "regrouped")
    assert ctl("container", "ps", "-a", "-q", "--filter", "name=regrouped").stdout == ""


def run_out(ctl: Manager, *args: str) -> str:
    return ctl("run", "--rm", *args).stdout


def test_dns_flags_write_resolv_conf(ctl: Manager) -> None:
    """Each flag replaces its part of the file; ``--dns-opt`` is docker's hidden spelling."""
    text = run_out(
        ctl, "--dns", "192.0.2.53", "--dns", "2001:db8::53", "--dns-search", "corp.test", "--dns-option",
        "ndots:3", "--dns-opt", "timeout:2", ctl.httpd, "cat", "/etc/resolv.conf",
    )  # fmt: skip
    assert text.splitlines() == [
        "nameserver 192.0.2.53",
        "nameserver 2001:db8::53",
        "search corp.test",
        "options ndots:3 timeout:2",
    ]


@pytest.mark.parametrize("network", ["bridge", "none"])
def test_add_host_lines_in_etc_hosts(ctl: Manager, network: str) -> None:
    hosts = run_out(
        ctl, "--network", network, "--add-host", "db.test:192.0.2.7", "--add-host", "v6.test:2001:db8::1",
        ctl.httpd, "cat", "/etc/hosts",
    )  # fmt: skip
    lines = [line.split() for line in hosts.splitlines()]
    assert ["192.0.2.7", "db.test"] in lines and ["2001:db8::1", "v6.test"] in lines


def test_domainname_is_the_kernel_nis_domain(ctl: Manager) -> None:
    assert (
        run_out(ctl, "--domainname", "corp.test", ctl.httpd, "cat", "/proc/sys/kernel/domainname")
        == "corp.test\n"
    )


@pytest.mark.parametrize(
    ("flag", "kind"), [("--pid", "pid"), ("--ipc", "ipc"), ("--uts", "uts"), ("--cgroupns", "cgroup")]
)
def test_host_namespace_flags_share_the_hosts(ctl: Manager, flag: str, kind: str) -> None:
    """``host`` joins the host's namespace (the same inode as this test's), ``private`` does not."""
    ours = os.readlink(f"/proc/self/ns/{kind}")
    assert run_out(ctl, f"{flag}=host", ctl.httpd, "readlink", f"/proc/self/ns/{kind}").strip() == ours
    assert run_out(ctl, flag, "private", ctl.httpd, "readlink", f"/proc/self/ns/{kind}").strip() != ours


def test_pid_host_sees_the_hosts_processes(ctl: Manager) -> None:
    assert run_out(ctl, "--pid", "host", ctl.httpd, "cat", f"/proc/{os.getpid()}/stat").split()[0] == str(
        os.getpid()
    )


def test_uts_host_and_network_host_keep_the_hosts_name(ctl: Manager) -> None:
    name = os.uname().nodename
    assert run_out(ctl, "--uts", "host", ctl.httpd, "hostname").strip() == name
    assert run_out(ctl, "--network", "host", ctl.httpd, "hostname").strip() == name


def test_userns_host_maps_every_id_to_itself(ctl: Manager) -> None:
    assert run_out(ctl, "--userns", "host", ctl.httpd, "cat", "/proc/self/uid_map").split() == [
        "0",
        "0",
        "4294967295",
    ]


def test_shm_size_sizes_dev_shm(ctl: Manager) -> None:
    """``df`` reads the tmpfs' size from the kernel: 10 MiB is 10240 blocks of 1 KiB."""
    df = run_out(ctl, "--shm-size", "10m", ctl.httpd, "df", "-k", "/dev/shm").splitlines()[-1].split()
    assert df[1] == "10240"


def test_group_add_by_name_and_number(ctl: Manager) -> None:
    """``staff`` is 50 in the test image's /etc/group; 4242 is in no file, taken as it is."""
    groups = run_out(ctl, "--group-add", "staff", "--group-add", "4242", ctl.httpd, "id", "-G").split()
    assert groups[0] == "0" and {"50", "4242"} <= set(groups)
    done = ctl("run", "--rm", "--group-add", "nosuchgroup", ctl.httpd, "true", check=False)
    assert done.returncode == 125 and "--group-add" in done.stderr


def test_cidfile_holds_the_id_and_is_never_overwritten(ctl: Manager, tmp_path: str) -> None:
    path = os.path.join(tmp_path, "cid")
    cid = ctl("run", "-d", "--cidfile", path, ctl.httpd).stdout.strip()
    with open(path) as f:
        assert f.read() == cid
    done = ctl("run", "-d", "--cidfile", path, ctl.httpd, check=False)
    assert done.returncode == 125 and "--cidfile" in done.stderr
    assert ctl("ps", "-a", "-q").stdout.split() == [cid[:12]]


def test_label_file_and_label(ctl: Manager, tmp_path: str) -> None:
    path = os.path.join(tmp_path, "labels")
    with open(path, "w") as f:
        f.write("# team labels\ntier=db\n\nowner=ops\n")
    ctl("create", "--name", "labelled", "--label-file", path, "--label", "owner=dev", ctl.httpd)
    labels = ctl.inspect("labelled")["Config"]["Labels"]
    assert (labels["tier"], labels["owner"]) == ("db", "dev")  # a --label wins over the file


def test_expose_is_published_by_publish_all(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "exposed", "--expose", "7000-7001/udp", "-P", ctl.httpd)
    ports = ctl("port", "exposed").stdout
    assert "7000/udp ->" in ports and "7001/udp ->" in ports and "80/tcp ->" in ports


@pytest.mark.parametrize(
    ("command", "status"),
    [(["nosuchcmd"], 127), (["/etc/passwd"], 126), (["/etc"], 126)],
    ids=["not-found", "not-executable", "directory"],
)
def test_run_and_exec_of_a_bad_command_exit_as_docker(ctl: Manager, command: list[str], status: int) -> None:
    """docker's statuses: 127 for a command not found, 126 for one that cannot be run."""
    done = ctl("run", "--rm", ctl.httpd, *command, check=False)
    assert done.returncode == status, done
    assert len(done.stderr.splitlines()) == 1 and command[0] in done.stderr, done.stderr
    ctl("run", "-d", "--name", "target", ctl.httpd)
    done = ctl("exec", "target", *command, check=False)
    assert done.returncode == status, done
    assert command[0] in done.stderr, done.stderr


def test_inspect_and_logs_of_a_missing_container_exit_1(ctl: Manager) -> None:
    for args in (["inspect", "nosuch"], ["logs", "nosuch"], ["container", "inspect", "nosuch"]):
        done = ctl(*args, check=False)
        assert done.returncode == 1 and "nosuch" in done.stderr, done
    assert ctl("rm", "nosuch", check=False).returncode == 1  # docker's rm also says 1


def test_run_it_and_exec_it_on_a_terminal_sized_0x0(ctl: Manager) -> None:
    """A fresh pty reads 0 rows and 0 columns: docker skips the resize, so must ocirtctl."""
    import pty
    import subprocess

    from support.ctl import OCIRTCTL

    ctl("run", "-d", "--name", "sized", ctl.httpd)
    for args in (
        ["run", "--rm", "-it", ctl.httpd, "echo", "hello"],
        ["exec", "-it", "sized", "echo", "hello"],
    ):
        leader, follower = pty.openpty()
        try:
            assert os.get_terminal_size(follower) == os.terminal_size((0, 0))
            proc = subprocess.run(
                [OCIRTCTL, "--root", ctl.root, *args],
                stdin=follower,
                stdout=follower,
                stderr=subprocess.PIPE,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
            assert b"hello" in os.read(leader, 4096)
        finally:
            os.close(leader)
            os.close(follower)


def test_default_log_driver_writes_docker_json_file_lines(ctl: Manager) -> None:
    """docker's default driver is json-file: one JSON object a line with log, stream, time."""
    import json

    ctl("run", "--name", "logged", ctl.httpd, "echo", "hello")
    doc = ctl.inspect("logged")
    assert doc["HostConfig"]["LogConfig"]["Type"] == "json-file"
    with open(doc["LogPath"]) as f:
        entry = json.loads(f.readline())
    assert (entry["log"], entry["stream"]) == ("hello\n", "stdout") and entry["time"].endswith("Z")
    assert ctl("logs", "logged").stdout == "hello\n"


def test_volume_rm_removes_the_others_and_names_the_one_in_use(ctl: Manager) -> None:
    for name in ("va", "vb", "vc"):
        ctl("volume", "create", name)
    ctl("create", "--name", "user", "-v", "vb:/data", ctl.httpd)
    done = ctl("volume", "rm", "va", "vb", "vc", check=False)
    assert done.returncode == 1 and done.stdout.split() == ["va", "vc"], done
    assert len(done.stderr.splitlines()) == 1 and "vb" in done.stderr
    assert ctl("volume", "ls", "-q").stdout.split() == ["vb"]


def test_network_ls_lists_the_pre_defined_networks(ctl: Manager) -> None:
    """docker lists bridge, host and none (driver ``null``); rm of host or none is refused."""
    ctl("run", "--rm", ctl.httpd, "true")  # the default bridge exists once used
    rows = {tuple(line.split()[1:3]) for line in ctl("network", "ls").stdout.splitlines()[1:]}
    assert {("bridge", "bridge"), ("host", "host"), ("none", "null")} <= rows
    for name in ("host", "none"):
        assert ctl("network", "rm", name, check=False).returncode != 0


def test_stop_frees_the_published_host_port(ctl: Manager) -> None:
    """docker gives a stopped container's host ports back: another container may take one,
    and the first one's next start publishes it again once it is free."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl("run", "-d", "--name", "p1", "-p", f"127.0.0.1:{port}:80", ctl.httpd)
    ctl("stop", "-t", "0", "p1")
    ctl("run", "-d", "--name", "p2", "-p", f"127.0.0.1:{port}:80", ctl.httpd)
    ctl("exec", "p2", "sh", "-c", "echo from p2 > /var/www/index.html")
    assert _fetch(f"http://127.0.0.1:{port}/") == "from p2\n"
    assert ctl("start", "p1", check=False).returncode != 0  # the port is p2's now
    ctl("rm", "-f", "p2")
    ctl("start", "p1")
    assert _fetch(f"http://127.0.0.1:{port}/") == "hello from ocirt\n"


def _fetch(url: str) -> str:
    import time
    import urllib.request

    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return str(reply.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_info_and_version_as_docker_scripts_read_them(ctl: Manager) -> None:
    """Counts against what was made here, the host's facts from the host, the platform from dpkg."""
    import subprocess

    ctl("create", "--name", "counted", ctl.httpd)
    info = ctl("info", "-f", "{{.Containers}} {{.ContainersStopped}} {{.NCPU}} {{.Name}} {{.DockerRootDir}}")
    assert info.stdout.split() == ["1", "1", str(os.cpu_count()), os.uname().nodename, ctl.root]
    assert ctl("system", "info", "-f", "{{.LoggingDriver}}").stdout == "json-file\n"
    assert "Containers: 1" in ctl("info").stdout.splitlines()[1]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout
    platform = ctl("version", "-f", "{{.Client.Os}}/{{.Client.Arch}} {{.Server.Os}}/{{.Server.Arch}}").stdout
    assert platform.split() == [f"linux/{arch.strip()}"] * 2
    assert ctl("version", "-f", "{{.Server.APIVersion}}").stdout.strip().startswith("1.")


def test_cfs_cpuset_mems_and_swappiness_reach_the_cgroup_files(ctl: Manager) -> None:
    """Read from the host's cgroup v1 files of the container's process, then changed by update."""
    from test_containers import cgroup_file

    ctl(
        "run", "-d", "--name", "cfs", "--network", "none", "--cpu-period", "50000", "--cpu-quota", "25000",
        "--cpuset-mems", "0", "--memory-swappiness", "10", ctl.httpd, "sleep", "60",
    )  # fmt: skip
    pid = ctl.inspect("cfs")["State"]["Pid"]
    assert cgroup_file(pid, "cpu", "cpu.cfs_period_us") == "50000"
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "25000"
    assert cgroup_file(pid, "cpuset", "cpuset.mems") == "0"
    assert cgroup_file(pid, "memory", "memory.swappiness") == "10"
    ctl("update", "--cpu-quota", "40000", "cfs")
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "40000"
    done = ctl("run", "--rm", "--cpus", "1", "--cpu-quota", "50000", ctl.httpd, "true", check=False)
    assert done.returncode == 125 and "--cpus" in done.stderr


def test_security_opt_systempaths_label_and_apparmor(ctl: Manager) -> None:
    """systempaths=unconfined leaves /proc/sys and /proc/kcore as they are (by default
    /proc/sys is a read-only mount and /proc/kcore a mount over it); label=disable and
    apparmor=unconfined are what this host gives anyway; a label or profile to apply is
    refused, as nothing here could apply it."""
    masked = "grep -qE ' /proc/(sys|kcore) ' /proc/mounts && echo masked || echo open"
    assert run_out(ctl, ctl.httpd, "sh", "-c", masked) == "masked\n"
    unconfined = run_out(ctl, "--security-opt", "systempaths=unconfined", ctl.httpd, "sh", "-c", masked)
    assert unconfined == "open\n"
    for opt in ("label=disable", "label:disable", "apparmor=unconfined"):
        assert run_out(ctl, "--security-opt", opt, ctl.httpd, "echo", "ok") == "ok\n"
    for opt in ("label=type:svirt_t", "apparmor=docker-default"):
        done = ctl("run", "--rm", "--security-opt", opt, ctl.httpd, "true", check=False)
        assert done.returncode == 125 and "not supported" in done.stderr and opt.split("=")[0] in done.stderr


def test_pull_policy_and_platform(ctl: Manager) -> None:
    """The test registry is down once the images are pulled: ``missing`` (the default) and
    ``never`` use the stored image, ``always`` goes to the registry and fails there; a
    ``--platform`` other than the stored image's pulls too."""
    assert run_out(ctl, "--pull", "never", ctl.httpd, "echo", "ok") == "ok\n"
    assert run_out(ctl, "--pull=missing", "--platform", "linux/amd64", ctl.httpd, "echo", "ok") == "ok\n"
    for args in (["--pull", "always"], ["--platform", "linux/s390x"]):
        done = ctl("run", "--rm", *args, ctl.httpd, "true", check=False)
        assert done.returncode == 125 and "registry" in done.stderr, done
    done = ctl("run", "--rm", "--pull", "never", "127.0.0.1:9/absent:1", "true", check=False)
    assert done.returncode == 125 and "no such image" in done.stderr
    assert ctl("run", "--rm", "--pull", "sometimes", ctl.httpd, "true", check=False).returncode == 125
    assert ctl("ps", "-a", "-q").stdout == ""


def test_logs_n_exec_env_file_and_update_restart(ctl: Manager, tmp_path: str) -> None:
    ctl("run", "-d", "--name", "misc", ctl.httpd, "sh", "-c", "echo one; echo two; echo three; sleep 60")
    import time

    deadline = time.monotonic() + 20
    while "three" not in ctl("logs", "misc").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ctl("logs", "-n", "2", "misc").stdout.splitlines() == ["two", "three"]
    path = os.path.join(tmp_path, "env")
    with open(path, "w") as f:
        f.write("# settings\nCOLOUR=blue\n")
    assert ctl("exec", "--env-file", path, "misc", "sh", "-c", "echo $COLOUR").stdout == "blue\n"
    ctl("update", "--restart", "on-failure:3", "misc")
    policy = ctl.inspect("misc")["HostConfig"]["RestartPolicy"]
    assert (policy["Name"], policy["MaximumRetryCount"]) == ("on-failure", 3)
    assert ctl("update", "--restart", "sometimes", "misc", check=False).returncode == 125


def test_device_cgroup_rule_reaches_the_devices_cgroup(ctl: Manager) -> None:
    """The kernel's own list (v1 ``devices.list`` of the container's cgroup) holds the rule,
    and a container without the rule has no such entry."""
    from test_containers import cgroup_file

    ctl("run", "-d", "--name", "ruled", "--device-cgroup-rule", "c 42:* rw", "--device-cgroup-rule",
        "b 7:3 r", ctl.httpd, "sleep", "60")  # fmt: skip
    allowed = cgroup_file(ctl.inspect("ruled")["State"]["Pid"], "devices", "devices.list").splitlines()
    assert "c 42:* rw" in allowed and "b 7:3 r" in allowed
    ctl("run", "-d", "--name", "unruled", ctl.httpd, "sleep", "60")
    assert "c 42:* rw" not in cgroup_file(ctl.inspect("unruled")["State"]["Pid"], "devices", "devices.list")
    bad = ctl("run", "--rm", "--device-cgroup-rule", "x 1:1 m", ctl.httpd, "true", check=False)
    assert bad.returncode == 125 and "--device-cgroup-rule" in bad.stderr


def test_cgroup_parent_places_the_container_under_it(ctl: Manager) -> None:
    """Read from the kernel (/proc/PID/cgroup); the parent the runtime made is removed after,
    as runc leaves it behind."""
    import secrets

    parent = f"/ocirt-test-parent-{secrets.token_hex(4)}"
    try:
        cid = ctl("run", "-d", "--cgroup-parent", parent, ctl.httpd, "sleep", "60").stdout.strip()
        with open(f"/proc/{ctl.inspect(cid)['State']['Pid']}/cgroup") as f:
            paths = {line.split(":", 2)[2].strip() for line in f if ":memory:" in line or ":pids:" in line}
        assert paths == {f"{parent}/{cid}"}
        assert ctl.inspect(cid)["HostConfig"]["CgroupParent"] == parent
        ctl("rm", "-f", cid)
    finally:
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            path = f"/sys/fs/cgroup/{hierarchy}{parent}"
            if os.path.isdir(path):
                os.rmdir(path)
    bad = ctl("run", "--rm", "--cgroup-parent", "/a/../../b", ctl.httpd, "true", check=False)
    assert bad.returncode == 125 and "--cgroup-parent" in bad.stderr


def test_ps_last_latest_and_no_trunc(ctl: Manager) -> None:
    """-n and -l count stopped containers too (they imply -a), the newest by creation."""
    made = [ctl("create", "--name", f"n{i}", ctl.httpd).stdout.strip() for i in range(3)]
    assert set(ctl("ps", "-n", "2", "-q").stdout.split()) == {made[1][:12], made[2][:12]}
    assert ctl("ps", "-l", "-q").stdout.split() == [made[2][:12]]
    assert ctl("ps", "--last", "0", "-q").stdout == ""
    assert made[0] in ctl("ps", "-a", "--no-trunc", "--format", "{{.ID}}").stdout.split()


def test_system_prune(ctl: Manager) -> None:
    """Stopped containers, then the networks and (with --volumes) volumes they left unused;
    a running container and what it uses stay."""
    ctl("network", "create", "prunenet")
    ctl("network", "create", "keptnet")
    ctl("volume", "create", "prunevol")
    ctl("create", "--name", "stopped", "--network", "prunenet", "-v", "prunevol:/data", ctl.httpd)
    ctl("run", "-d", "--name", "running", "--network", "keptnet", ctl.httpd)
    assert ctl("system", "prune", check=False).returncode == 125  # no terminal to ask on
    done = ctl("system", "prune", "-f", "--volumes")
    assert "stopped" not in ctl("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "running" in ctl("ps", "--format", "{{.Names}}").stdout.split()
    names = ctl("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "prunenet" not in names and "keptnet" in names
    assert "prunevol" not in ctl("volume", "ls", "-q").stdout.split()
    assert "Deleted Containers:" in done.stdout and "prunenet" in done.stdout


def test_publish_port_ranges(ctl: Manager) -> None:
    """``-p H1-H2:C1-C2`` binds each pair (httpd listens on 80, the first of the range)."""
    import socket

    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                continue
    ctl("run", "-d", "--name", "ranged", "-p", f"127.0.0.1:{port}-{port + 1}:80-81", ctl.httpd)
    mapped = ctl("port", "ranged").stdout.splitlines()
    assert sorted(mapped) == [f"80/tcp -> 127.0.0.1:{port}", f"81/tcp -> 127.0.0.1:{port + 1}"]
    assert _fetch(f"http://127.0.0.1:{port}/") == "hello from ocirt\n"
    bad = ctl("run", "--rm", "-p", "8000-8002:80-81", ctl.httpd, "true", check=False)
    assert bad.returncode == 125 and "-p" in bad.stderr


def test_mac_address_is_the_interfaces(ctl: Manager) -> None:
    mac = run_out(ctl, "--mac-address", "02:42:AC:11:00:99", ctl.httpd, "cat", "/sys/class/net/eth0/address")
    assert mac == "02:42:ac:11:00:99\n"
    bad = ctl("run", "--rm", "--mac-address", "01:00:5e:00:00:01", ctl.httpd, "true", check=False)
    assert bad.returncode == 125 and "--mac-address" in bad.stderr
