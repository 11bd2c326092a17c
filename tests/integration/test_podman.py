"""podman (Debian's 4.3, with conmon and netavark) running containers on ocirt.

podman is isolated from the host's: its own storage root, runroot, tmpdir, containers.conf,
storage.conf and registries.conf, cgroupfs under a private cgroup parent, a file events
log, and a default network of the test's own (bridge name and subnet). Its containers.conf
is the stock one (Debian's default sysctls and capabilities) with only those paths and the
ulimits this host allows added. ocirt keeps its
state in its default root: podman 4.3 drops ``--runtime-flag`` from the cleanup command
conmon runs when a container exits, so a private ``--root`` would never see the ``delete``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from ocirt.runtime.state import DEFAULT_ROOT

from integration import host, netavark
from integration.images import rootfs_tar
from integration.terminal import INTERACT, SHOW_TTY, TYPED, check_interactive, run_on_pty

IMAGE = "localhost/ocirt-busybox:it"
ULIMITS = ["--ulimit", "nofile=1024:4096", "--ulimit", "nproc=4096:4096"]
# Paths podman 4.3 writes whatever its configuration says.
SHARED = ["/run/containers", "/var/lib/containers"]
STOCK_CONF = "/usr/share/containers/containers.conf"
OCIRT_ROOT = DEFAULT_ROOT
TRAP_LOOP = 'trap "exit 5" TERM; while :; do sleep 0.1; done'


class Podman:
    def __init__(self, ws: host.Workspace, network: str, runtime: str) -> None:
        self.ws = ws
        self.network = network
        self.cgroup_parent = f"/{ws.token}"
        self.env = {**os.environ, **_write_configs(ws, network)}
        self.base = [
            "podman",
            *("--root", ws.path("storage"), "--runroot", ws.path("runroot"), "--tmpdir", ws.path("tmp")),
            *("--cgroup-manager", "cgroupfs", "--events-backend", "file", "--storage-driver", "vfs"),
            *("--runtime", runtime),
        ]

    def __call__(self, *args: str, timeout: float = 90) -> host.Result:
        return host.run([*self.base, *args], env=self.env, timeout=timeout)

    def run_args(self, *options: str) -> list[str]:
        """``run`` with what every container here needs, then ``options``."""
        return ["run", *ULIMITS, "--cgroup-parent", self.cgroup_parent, *options]

    def detached(self, *options: str) -> str:
        return self(*self.run_args("-d", *options), IMAGE, "sh", "-c", TRAP_LOOP).ok().stdout.strip()

    def inspect(self, cid: str, template: str) -> str:
        return self("inspect", cid, "--format", template).ok().stdout.strip()


def _write_configs(ws: host.Workspace, network: str) -> dict[str, str]:
    conf, storage, registries = (
        os.path.join(ws.dir, n) for n in ("containers.conf", "storage.conf", "reg.conf")
    )
    with open(STOCK_CONF, "rb") as f:
        tables = tomllib.load(f)
    tables["containers"]["default_ulimits"] = ["nofile=1024:4096", "nproc=4096:4096"]
    tables["engine"].update(
        cgroup_manager="cgroupfs",
        events_logger="file",
        events_logfile_path=f"{ws.dir}/events.log",
        tmp_dir=ws.path("tmp"),
    )
    tables["network"].update(
        network_backend="netavark", network_config_dir=ws.path("networks"), default_network=network
    )
    with open(conf, "w") as f:
        f.write(_toml(tables))
    with open(storage, "w") as f:
        f.write(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{ws.path("storage")}"\n'
            f'runroot = "{ws.path("runroot")}"\n'
        )
    with open(registries, "w") as f:
        f.write("unqualified-search-registries = []\n")
    return {
        "CONTAINERS_CONF": conf,
        "CONTAINERS_STORAGE_CONF": storage,
        "CONTAINERS_REGISTRIES_CONF": registries,
    }


def _toml(tables: dict[str, Any], prefix: str = "") -> str:
    """TOML for nested tables of strings, numbers, booleans and lists of strings (JSON's
    spelling of those is TOML's)."""
    plain = [f"{k} = {json.dumps(v)}\n" for k, v in tables.items() if not isinstance(v, dict)]
    text = (f"[{prefix}]\n" if prefix else "") + "".join(plain)
    for key, value in tables.items():
        if isinstance(value, dict):
            text += _toml(value, f"{prefix}.{key}" if prefix else key)
    return text


@contextlib.contextmanager
def session(runtime: str) -> Iterator[Podman]:
    """podman on ``runtime`` with the test's own storage and default network, its image imported."""
    ws = host.Workspace("podman", SHARED, ocirt_root=OCIRT_ROOT)
    bridge = f"oit{ws.token[-8:]}"
    hostnet = netavark.HostNetwork(bridge)
    netavark.write_network(ws.path("networks"), ws.token, bridge, netavark.free_subnet())
    pm = Podman(ws, ws.token, runtime)
    netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    try:
        pm("import", rootfs_tar(ws.path("image")), IMAGE).ok()
        yield pm
    finally:
        found = host.attempt(
            lambda: pm("rm", "--all", "--force", "--time", "0"), lambda: pm("rmi", "--all", "--force")
        )
        found += ws.cleanup() + hostnet.restore()
        netns_after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        found += [f"netns {n}" for n in netns_after - netns_before if n.startswith("netns-")]
        assert not found, f"podman left behind: {found}"


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    with session(host.OCIRT) as pm:
        yield pm


def test_run_rm_exit_status_and_streams(podman: Podman) -> None:
    res = podman(
        *podman.run_args("--rm", "--network", "none"), IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7"
    )
    assert res.returncode == 7, res
    assert res.stdout == "out\n"
    assert "err" in res.stderr


def test_missing_command_exit_codes(podman: Podman) -> None:
    """podman maps the runtime's error text to 127 (not found) and 126 (not executable)."""
    args = podman.run_args("--rm", "--network", "none")
    assert podman(*args, IMAGE, "/nonexistent").returncode == 127
    assert podman(*args, IMAGE, "/etc/passwd").returncode == 126


def test_exec_pause_stop_delete(podman: Podman) -> None:
    cid = podman.detached("--network", "none")
    state = host.ocirt_state(podman.ws.ocirt_root, cid)
    assert state["status"] == "running"
    assert state["pid"] == int(podman.inspect(cid, "{{.State.Pid}}"))

    res = podman("exec", cid, "sh", "-c", "echo in-$(hostname); exit 4")
    assert res.returncode == 4, res
    assert res.stdout.startswith("in-")
    assert podman("exec", cid, "nosuchcmd").returncode == 127

    podman("pause", cid).ok()
    assert podman.inspect(cid, "{{.State.Status}}") == "paused"
    assert host.ocirt_state(podman.ws.ocirt_root, cid)["status"] == "paused"
    podman("unpause", cid).ok()
    assert host.ocirt_state(podman.ws.ocirt_root, cid)["status"] == "running"

    started = time.monotonic()
    podman("stop", "--time", "20", cid).ok()
    assert time.monotonic() - started < 15, "SIGTERM did not reach the container's trap"
    assert podman.inspect(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited 5"
    podman("rm", cid).ok()
    assert not os.path.exists(os.path.join(podman.ws.ocirt_root, cid)), "ocirt delete left its state"


def test_terminal_run_and_exec(podman: Podman) -> None:
    script = f"{INTERACT}; {SHOW_TTY}; exit 3"
    status, out = run_on_pty(
        [*podman.base, *podman.run_args("--rm", "-it", "--network", "none"), IMAGE, "sh", "-c", script],
        env=podman.env,
        typed=TYPED,
    )
    check_interactive(status, out, 3, "/dev/pts/0")

    cid = podman.detached("--network", "none")
    status, out = run_on_pty(
        [*podman.base, "exec", "-it", cid, "sh", "-c", script], env=podman.env, typed=TYPED
    )
    check_interactive(status, out, 3)
    podman("rm", "--force", "--time", "0", cid).ok()


def test_resources_and_security_flags(podman: Podman) -> None:
    cid = podman.detached(
        *(
            "--network",
            "none",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--read-only",
            "--user",
            "65534:65534",
        ),
        *("--cap-drop", "NET_RAW", "--cap-drop", "CHOWN"),
    )
    cgroup = f"{podman.cgroup_parent}/libpod-{cid}"
    with open(f"{host.CGROUP_ROOT}/memory{cgroup}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 64 * 1024 * 1024
    with open(f"{host.CGROUP_ROOT}/pids{cgroup}/pids.max") as f:
        assert f.read().strip() == "50"

    res = podman("exec", cid, "sh", "-c", "id -u; id -g; grep CapBnd /proc/self/status").ok()
    uid, gid, capbnd = res.stdout.split("\n")[:3]
    assert (uid, gid) == ("65534", "65534")
    bounding = int(capbnd.split()[1], 16)
    assert not bounding & (1 << 13), "CAP_NET_RAW still in the bounding set"
    assert not bounding & (1 << 0), "CAP_CHOWN still in the bounding set"
    assert bounding & (1 << 10), "CAP_NET_BIND_SERVICE (a podman default) is missing"
    denied = podman("exec", cid, "touch", "/new-file")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied
    podman("exec", cid, "touch", "/tmp/ok").ok()
    podman("rm", "--force", "--time", "0", cid).ok()


def test_network_none_has_only_loopback(podman: Podman) -> None:
    res = podman(*podman.run_args("--rm", "--network", "none"), IMAGE, "ls", "/sys/class/net").ok()
    assert res.stdout.split() == ["lo"]


def test_default_network_is_the_private_bridge(podman: Podman) -> None:
    """The container gets an address on the test's subnet and reaches the host's end of the bridge.

    podman joins the namespace netavark made by path and asks for the stock
    ``net.ipv4.ping_group_range`` in it; stock podman also drops NET_RAW, which busybox's
    ping (raw sockets only) needs, so one run adds it back and one checks the default."""
    with open(os.path.join(podman.ws.dir, "networks", f"{podman.network}.json")) as f:
        gateway = json.load(f)["subnets"][0]["gateway"]
    script = f"ip -4 -o addr show eth0; ping -c 1 -W 2 {gateway} >/dev/null && echo reached"
    res = podman(*podman.run_args("--rm", "--cap-add", "NET_RAW"), IMAGE, "sh", "-c", script).ok()
    assert f"inet {gateway.rsplit('.', 1)[0]}." in res.stdout
    assert "reached" in res.stdout
    stock = podman(*podman.run_args("--rm"), IMAGE, "cat", "/proc/sys/net/ipv4/ping_group_range").ok()
    assert stock.stdout.split() == ["0", "0"]


def test_pod_members_join_the_infra_namespaces(podman: Podman) -> None:
    """A pod's containers enter its infra container's namespaces by path (``/proc/<pid>/ns/*``)."""
    pod = podman(
        *("pod", "create", "--name", "pod1", "--share", "pid,ipc,net,uts", "--network", "none"),
        *("--cgroup-parent", podman.cgroup_parent),
    ).ok()
    podman("pod", "start", "pod1").ok()
    try:
        res = podman(
            *podman.run_args("--rm", "--pod", "pod1"), IMAGE, "sh", "-c", "hostname; ps -o comm"
        ).ok()
        lines = res.stdout.split()
        assert lines[0] == "pod1"
        assert "catatonit" in lines, "the infra container's pid namespace was not joined"
    finally:
        host.clear_unmounted_hierarchies(podman.ws.token)
        podman("pod", "rm", "--force", "--time", "0", "pod1").ok()
        # podman removes the pod's cgroup in the controllers of /proc/cgroups only; the
        # runtime (runc as well) also made the members' parent in name=systemd and cgroup2.
        host.remove_cgroups(f"{podman.ws.token}/{pod.stdout.strip()}")


def test_checkpoint_and_restore(podman: Podman) -> None:
    """podman drives ``ocirt checkpoint``/``restore`` (CRIU): the process goes on, it does not start over."""
    counter = "echo started >> /starts; i=0; while :; do i=$((i+1)); echo $i > /n; sleep 0.05; done"
    cid = podman(*podman.run_args("-d", "--network", "none"), IMAGE, "sh", "-c", counter).ok().stdout.strip()

    def read(path: str) -> str:
        return podman("exec", cid, "cat", path).ok().stdout

    def count() -> int:
        """The counter; empty for a moment while the shell rewrites the file."""
        while not (text := read("/n").strip()):
            time.sleep(0.05)
        return int(text)

    deadline = time.monotonic() + 20
    while count() < 10:
        assert time.monotonic() < deadline, "the counter does not count"
        time.sleep(0.1)
    podman("container", "checkpoint", cid).ok()
    assert podman.inspect(cid, "{{.State.Status}}") == "exited"
    podman("container", "restore", cid).ok()
    assert host.ocirt_state(OCIRT_ROOT, cid)["status"] == "running"
    assert count() >= 10
    assert read("/starts") == "started\n", "the restored container ran its program again"
    podman("rm", "--force", "--time", "0", cid).ok()
