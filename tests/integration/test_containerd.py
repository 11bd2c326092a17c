"""containerd (Debian's 1.6) with its runc v2 shim driving ocirt through ``--runc-binary``.

The daemon runs from a private config: root, state, gRPC/ttrpc/debug sockets and the opt
directory in the test's workspace, the CRI plugin and the snapshotters it cannot use
disabled. ``ctr run --runc-root`` keeps ocirt's state private as well: the shim runs
``ocirt --root <runc-root>/<namespace>``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from integration import host
from integration.images import docker_archive, rootfs_tar
from integration.terminal import INTERACT, SHOW_TTY, TYPED, check_interactive, run_on_pty

IMAGE = "docker.io/library/ocirt-busybox:it"
TRAP_LOOP = 'trap "exit 5" TERM; while :; do sleep 0.1; done'
DISABLED = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
]


class Containerd:
    def __init__(self, ws: host.Workspace, runtime: str) -> None:
        self.ws = ws
        self.runtime = runtime
        self.socket = os.path.join(ws.dir, "containerd.sock")
        self.namespace = ws.token
        self.runc_root = ws.path("runc-root")
        self.ws.ocirt_root = os.path.join(self.runc_root, self.namespace)
        self.ctr = ["ctr", "--address", self.socket, "--namespace", self.namespace]

    def config(self) -> str:
        path = os.path.join(self.ws.dir, "config.toml")
        disabled = ", ".join(f'"{p}"' for p in DISABLED)
        with open(path, "w") as f:
            f.write(
                "version = 2\n"
                f'root = "{self.ws.path("root")}"\n'
                f'state = "{self.ws.path("state")}"\n'
                f"disabled_plugins = [{disabled}]\n"
                f'[grpc]\n  address = "{self.socket}"\n'
                f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
                f'[debug]\n  address = "{self.socket}.debug"\n'
                f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.ws.path("opt")}"\n'
            )
        return path

    def __call__(self, *args: str, timeout: float = 90) -> host.Result:
        return host.run([*self.ctr, *args], timeout=timeout)

    def run_args(self, *options: str) -> list[str]:
        """``ctr run`` on ocirt, with the shim's FIFOs and ocirt's state in the workspace."""
        runtime = ["--runc-binary", self.runtime, "--runc-root", self.runc_root]
        return ["run", *runtime, "--fifo-dir", self.ws.path("fifo"), *options]

    def detached(self, cid: str, *options: str) -> None:
        self(*self.run_args("-d", *options), IMAGE, cid, "sh", "-c", TRAP_LOOP).ok()

    def exec_args(self, cid: str, exec_id: str, *command: str, tty: bool = False) -> list[str]:
        options = ["--fifo-dir", self.ws.path("fifo"), "--exec-id", exec_id, *(["-t"] if tty else [])]
        return [*self.ctr, "task", "exec", *options, cid, *command]

    def task_status(self, cid: str) -> str:
        for line in self("task", "ls").ok().stdout.splitlines()[1:]:
            name, _pid, status = line.split()
            if name == cid:
                return status
        raise AssertionError(f"no task {cid}")

    def remove(self, cid: str) -> None:
        self("task", "kill", "--signal", "SIGKILL", cid)
        deadline = time.monotonic() + 20
        while self.task_status(cid) != "STOPPED" and time.monotonic() < deadline:
            time.sleep(0.1)
        self("task", "delete", cid).ok()
        self("container", "rm", cid).ok()


@contextlib.contextmanager
def session(runtime: str) -> Iterator[Containerd]:
    """A private containerd whose ``ctr run`` uses ``runtime``, its image imported."""
    ws = host.Workspace("containerd", ["/run/containerd"])
    ctd = Containerd(ws, runtime)
    daemon = None
    try:
        daemon = host.start_daemon(
            ["containerd", "--config", ctd.config()],
            os.path.join(ws.dir, "containerd.log"),
            lambda: os.path.exists(ctd.socket) and host.run([*ctd.ctr, "version"]).returncode == 0,
        )
        archive = docker_archive(rootfs_tar(ws.path("image")), os.path.join(ws.dir, "image.tar"), IMAGE)
        ctd("images", "import", archive).ok()
        yield ctd
    finally:
        found = []
        if daemon is not None:
            names = ctd("container", "ls", "--quiet").stdout.split()
            found += host.attempt(*(lambda n=n: ctd.remove(n) for n in names))
            found += host.attempt(lambda: host.stop_daemon(daemon))
        found += ws.cleanup()
        assert not found, f"containerd left behind: {found}"


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    with session(host.OCIRT) as ctd:
        yield ctd


def test_run_rm_exit_status(containerd: Containerd) -> None:
    res = containerd(*containerd.run_args("--rm"), IMAGE, "run-rm", "sh", "-c", "echo out; id -u; exit 3")
    assert res.returncode == 3, res
    assert res.stdout.split() == ["out", "0"]
    assert not os.path.exists(os.path.join(containerd.ws.ocirt_root, "run-rm"))


def test_default_network_is_a_new_namespace_with_loopback_up(containerd: Containerd) -> None:
    """``ctr run`` without CNI gives a network namespace of the container's own, holding only
    ``lo``, which the runtime brings up as runc does; ``--net-host`` keeps the host's."""
    script = (
        "ls /sys/class/net; readlink /proc/self/ns/net; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo lo-up"
    )
    own = containerd(*containerd.run_args("--rm"), IMAGE, "net-own", "sh", "-c", script).ok().stdout.split()
    assert own[0] == "lo" and own[2] == "lo-up", own
    assert own[1] != os.readlink("/proc/self/ns/net")
    hosts = containerd(*containerd.run_args("--rm", "--net-host"), IMAGE, "net-host", "sh", "-c", script)
    assert os.readlink("/proc/self/ns/net") in hosts.ok().stdout.split()


def test_exec_pause_kill_delete(containerd: Containerd) -> None:
    containerd.detached("life")
    state = host.ocirt_state(containerd.ws.ocirt_root, "life")
    assert state["status"] == "running"
    assert str(state["bundle"]).startswith(containerd.ws.dir)

    res = host.run(containerd.exec_args("life", "e1", "sh", "-c", "echo exec-ok; exit 4"))
    assert res.returncode == 4, res
    assert res.stdout == "exec-ok\n"

    containerd("task", "pause", "life").ok()
    assert containerd.task_status("life") == "PAUSED"
    assert host.ocirt_state(containerd.ws.ocirt_root, "life")["status"] == "paused"
    containerd("task", "resume", "life").ok()
    assert containerd.task_status("life") == "RUNNING"

    containerd("task", "kill", "life").ok()  # SIGTERM: the trap exits 5
    deadline = time.monotonic() + 15
    while containerd.task_status("life") != "STOPPED":
        assert time.monotonic() < deadline, "SIGTERM did not stop the task"
        time.sleep(0.1)
    # the shim reads ocirt's "container not running" as a finished process (NotFound), as with runc
    late = containerd("task", "kill", "life")
    assert late.returncode == 1 and "process already finished: not found" in late.stderr, late
    res = containerd("task", "delete", "life").ok()
    assert "exit code 5" in res.stderr, res
    containerd("container", "rm", "life").ok()
    assert not os.path.exists(os.path.join(containerd.ws.ocirt_root, "life"))


def test_terminal_run_and_exec(containerd: Containerd) -> None:
    script = f"{INTERACT}; {SHOW_TTY}; exit 6"
    status, out = run_on_pty(
        [*containerd.ctr, *containerd.run_args("--rm", "-t"), IMAGE, "tty-run", "sh", "-c", script],
        typed=TYPED,
    )
    check_interactive(status, out, 6, "/dev/pts/0")

    containerd.detached("tty-exec")
    status, out = run_on_pty(
        containerd.exec_args("tty-exec", "e1", "sh", "-c", script, tty=True), typed=TYPED
    )
    check_interactive(status, out, 6, sized=False)
    containerd.remove("tty-exec")


def test_limits_and_capabilities(containerd: Containerd) -> None:
    containerd.detached(
        "limits", "--memory-limit", str(64 * 1024 * 1024), "--cap-drop", "CAP_NET_RAW", "--read-only"
    )
    cgroup = f"{host.CGROUP_ROOT}/memory/{containerd.namespace}/limits"
    with open(f"{cgroup}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 64 * 1024 * 1024
    res = host.run(
        containerd.exec_args("limits", "e1", "sh", "-c", "grep CapBnd /proc/self/status; touch /x")
    )
    assert res.returncode != 0, res
    assert "Read-only file system" in res.stderr
    assert not int(res.stdout.split()[1], 16) & (1 << 13), "CAP_NET_RAW still in the bounding set"
    containerd.remove("limits")
