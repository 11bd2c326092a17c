"""Docker Engine (Debian's docker.io 20.10) with ocirt added as a runtime.

``dockerd`` listens on a socket in the test's workspace, keeps its data root, exec root,
pidfile and the containerd it starts under it. Its default bridge network is a bridge the
test makes (a private name and a free subnet, removed at the end); it leaves the host's
iptables, forwarding and masquerading alone. Docker's containerd shim runs ocirt with
``--root <exec-root>/runtime-runc/moby`` (20.10 names it after runc whatever the runtime).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from integration import host, netavark
from integration.images import docker_archive, rootfs_tar
from integration.terminal import INTERACT, SHOW_TTY, TYPED, check_interactive, run_on_pty

IMAGE = "ocirt-busybox:it"
TRAP_LOOP = 'trap "exit 5" TERM; while :; do sleep 0.1; done'
# Paths dockerd writes whatever its flags say: its plugin directory and the shims' sockets.
SHARED = ["/run/docker", "/run/containerd"]


class Docker:
    def __init__(self, ws: host.Workspace, runtime: str) -> None:
        self.ws = ws
        self.runtime = runtime
        self.bridge = f"oitd{ws.token[-8:]}"
        self.gateway = netavark.free_subnet().replace(".0/24", ".1")
        self.socket = os.path.join(ws.dir, "docker.sock")
        self.exec_root = ws.path("exec")
        self.ws.ocirt_root = os.path.join(self.exec_root, "runtime-runc", "moby")
        self.cgroup_parent = f"/{ws.token}"
        self.client = ["docker", "--host", f"unix://{self.socket}"]

    def daemon_argv(self) -> list[str]:
        config = os.path.join(self.ws.dir, "daemon.json")
        with open(config, "w") as f:
            json.dump({}, f)
        return [
            "dockerd",
            *("--host", f"unix://{self.socket}", "--config-file", config),
            *("--data-root", self.ws.path("data"), "--exec-root", self.exec_root),
            *("--pidfile", os.path.join(self.ws.dir, "docker.pid")),
            *("--bridge", self.bridge, "--iptables=false", "--ip6tables=false", "--ip-masq=false"),
            *("--ip-forward=false", "--userland-proxy=false", "--storage-driver", "vfs"),
            *("--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", self.cgroup_parent),
            *("--add-runtime", f"under-test={self.runtime}"),
        ]

    def make_bridge(self) -> None:
        """The bridge dockerd takes as its default network, with the gateway address on it."""
        for argv in (
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)

    def __call__(self, *args: str, timeout: float = 90) -> host.Result:
        return host.run([*self.client, *args], timeout=timeout)

    def run_args(self, *options: str) -> list[str]:
        return ["run", "--runtime", "under-test", "--network", "none", *options]

    def detached(self, *options: str) -> str:
        return self(*self.run_args("-d", *options), IMAGE, "sh", "-c", TRAP_LOOP).ok().stdout.strip()

    def inspect(self, cid: str, template: str) -> str:
        return self("inspect", "--format", template, cid).ok().stdout.strip()


@contextlib.contextmanager
def session(runtime: str) -> Iterator[Docker]:
    """A private dockerd with ``runtime`` as its runtime ``under-test``, its image loaded."""
    ws = host.Workspace("docker", SHARED)
    dk = Docker(ws, runtime)
    daemon = None
    try:
        dk.make_bridge()
        daemon = host.start_daemon(
            dk.daemon_argv(),
            os.path.join(ws.dir, "dockerd.log"),
            lambda: os.path.exists(dk.socket) and host.run([*dk.client, "version"]).returncode == 0,
        )
        archive = docker_archive(rootfs_tar(ws.path("image")), os.path.join(ws.dir, "image.tar"), IMAGE)
        dk("load", "--input", archive).ok()
        yield dk
    finally:
        found = (
            [] if daemon is None else host.attempt(lambda: _remove_all(dk), lambda: host.stop_daemon(daemon))
        )
        found += host.attempt(
            lambda: subprocess.run(["ip", "link", "del", dk.bridge], capture_output=True),
            # dockerd binds the host's netns here for --network host and keeps it after it stops
            lambda: subprocess.run(
                ["umount", os.path.join(dk.exec_root, "netns", "default")], capture_output=True
            ),
        )
        found += ws.cleanup()
        assert not found, f"dockerd left behind: {found}"


def _remove_all(dk: Docker) -> None:
    """Containers, then the user networks a test made: dockerd keeps a network's ``br-*``
    bridge on the host after it stops, so a network not removed here outlives the session."""
    ids = dk("ps", "--all", "--quiet").stdout.split()
    if ids:
        dk("rm", "--force", *ids)
    dk("network", "prune", "--force")


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    with session(host.OCIRT) as dk:
        yield dk


def test_run_rm_exit_status_and_exit_codes(docker: Docker) -> None:
    res = docker(*docker.run_args("--rm"), IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert res.returncode == 7, res
    assert res.stdout == "out\n"
    assert "err" in res.stderr
    # Docker maps the runtime's error text: 127 for a missing program, 126 for a non-executable one.
    assert docker(*docker.run_args("--rm"), IMAGE, "/nonexistent").returncode == 127
    assert docker(*docker.run_args("--rm"), IMAGE, "/etc/passwd").returncode == 126


def test_default_bridge_network(docker: Docker) -> None:
    """Docker's prestart hook (``libnetwork-setkey``) puts the container on the default bridge:
    it gets an address on the test's subnet and reaches the host's end of the bridge."""
    script = f"ip -4 -o addr show eth0; ping -c 1 -W 2 {docker.gateway} >/dev/null && echo reached"
    res = docker("run", "--runtime", "under-test", "--rm", IMAGE, "sh", "-c", script).ok()
    assert f"inet {docker.gateway.rsplit('.', 1)[0]}." in res.stdout, res
    assert "reached" in res.stdout, res


def test_exec_pause_stop(docker: Docker) -> None:
    cid = docker.detached()
    state = host.ocirt_state(docker.ws.ocirt_root, cid)
    assert state["status"] == "running"
    assert state["pid"] == int(docker.inspect(cid, "{{.State.Pid}}"))

    res = docker("exec", cid, "sh", "-c", "echo exec-ok; exit 4")
    assert res.returncode == 4, res
    assert res.stdout == "exec-ok\n"

    docker("pause", cid).ok()
    assert docker.inspect(cid, "{{.State.Status}}") == "paused"
    assert host.ocirt_state(docker.ws.ocirt_root, cid)["status"] == "paused"
    docker("unpause", cid).ok()
    assert docker.inspect(cid, "{{.State.Status}}") == "running"

    started = time.monotonic()
    docker("stop", "--time", "20", cid).ok()
    assert time.monotonic() - started < 15, "SIGTERM did not reach the container's trap"
    assert docker.inspect(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited 5"
    docker("rm", cid).ok()
    assert not os.path.exists(os.path.join(docker.ws.ocirt_root, cid)), "ocirt delete left its state"


def test_terminal_run_and_exec(docker: Docker) -> None:
    script = f"{INTERACT}; {SHOW_TTY}; exit 2"
    status, out = run_on_pty(
        [*docker.client, *docker.run_args("--rm", "-it"), IMAGE, "sh", "-c", script], typed=TYPED
    )
    check_interactive(status, out, 2, "/dev/pts/0")

    cid = docker.detached()
    status, out = run_on_pty([*docker.client, "exec", "-it", cid, "sh", "-c", script], typed=TYPED)
    check_interactive(status, out, 2)
    docker("rm", "--force", cid).ok()


def test_resources_and_security_flags(docker: Docker) -> None:
    cid = docker.detached(
        *("--memory", "64m", "--pids-limit", "40", "--read-only", "--user", "65534:65534"),
        *("--cap-drop", "NET_RAW", "--cap-drop", "CHOWN"),
    )
    cgroup = f"{docker.cgroup_parent}/{cid}"
    with open(f"{host.CGROUP_ROOT}/memory{cgroup}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 64 * 1024 * 1024
    with open(f"{host.CGROUP_ROOT}/pids{cgroup}/pids.max") as f:
        assert f.read().strip() == "40"
    res = docker("exec", cid, "sh", "-c", "id -u; id -g; grep -E 'CapBnd|Seccomp:' /proc/self/status").ok()
    uid, gid, capbnd, seccomp = res.stdout.split("\n")[:4]
    assert (uid, gid) == ("65534", "65534")
    bounding = int(capbnd.split()[1], 16)
    assert not bounding & (1 << 13) and not bounding & (1 << 0), capbnd
    assert seccomp.split()[1] == "2", "Docker's default seccomp profile is not in force"
    denied = docker("exec", cid, "touch", "/new-file")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied

    # docker update reaches the runtime as `ocirt update --resources -` (JSON on stdin)
    docker("update", "--memory", "100m", "--memory-swap", "200m", "--pids-limit", "77", cid).ok()
    with open(f"{host.CGROUP_ROOT}/memory{cgroup}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 100 * 1024 * 1024
    with open(f"{host.CGROUP_ROOT}/pids{cgroup}/pids.max") as f:
        assert f.read().strip() == "77"
    docker("rm", "--force", cid).ok()


def test_restart_policy_and_start_again(docker: Docker) -> None:
    """Each restart deletes the runtime's container and creates one with the same id again."""
    cid = (
        docker(*docker.run_args("-d", "--restart", "on-failure:2"), IMAGE, "sh", "-c", "exit 1")
        .ok()
        .stdout.strip()
    )
    deadline = time.monotonic() + 30
    while docker.inspect(cid, "{{.RestartCount}} {{.State.Status}}") != "2 exited":
        assert time.monotonic() < deadline, docker.inspect(cid, "{{json .State}}")
        time.sleep(0.2)
    assert docker.inspect(cid, "{{.State.ExitCode}}") == "1"
    docker("rm", cid).ok()

    cid = docker.detached()
    docker("stop", "--time", "20", cid).ok()
    docker("start", cid).ok()
    assert host.ocirt_state(docker.ws.ocirt_root, cid)["status"] == "running"
    assert docker("exec", cid, "echo", "again").ok().stdout == "again\n"
    docker("rm", "--force", cid).ok()
