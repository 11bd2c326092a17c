"""Every kind of bad input: one clear line, exit status 1, and nothing left behind.

The ``rt`` fixture's finalizer fails the test if a state directory, cgroup or mount of the
container outlives the failed command; each test also checks for stray processes itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Runtime, cgroup_dirs
from support import hostfacts


def processes_in(path: str) -> list[int]:
    """Processes whose root directory is inside ``path`` (a leaked container init)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root").startswith(path):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def fails_cleanly(rt: Runtime, bundle: str, expected: str, *flags: str, command: str = "create") -> str:
    cid = rt.new_id()
    res = rt(*flags, command, "--bundle", bundle, cid)
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert lines[0].startswith("ocirt: "), lines[0]
    assert expected in lines[0], lines[0]
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert cgroup_dirs(cid) == []
    assert processes_in(bundle) == []
    return lines[0]


Edit = Callable[[dict[str, Any]], None]

CASES: list[tuple[str, Edit, str]] = [
    (
        "empty args",
        lambda c: c["process"].update(args=[]),
        "config.json: process.args: must be a non-empty list",
    ),
    ("args not list", lambda c: c["process"].update(args="sh"), "process.args: must be a list"),
    ("no ociVersion", lambda c: c.pop("ociVersion"), "ociVersion: is required"),
    ("future ociVersion", lambda c: c.update(ociVersion="2.0.0"), "ociVersion: unsupported version '2.0.0'"),
    ("no root", lambda c: c.pop("root"), "root: is required"),
    ("relative cwd", lambda c: c["process"].update(cwd="tmp"), "process.cwd: must be an absolute path"),
    (
        "bad namespace",
        lambda c: c["linux"]["namespaces"].append({"type": "bogus"}),
        "linux.namespaces[5].type: unknown namespace type 'bogus'",
    ),
    (
        "missing ns path",
        lambda c: c["linux"]["namespaces"].append({"type": "cgroup", "path": "/proc/999999999/ns/cgroup"}),
        "linux.namespaces[5].path: /proc/999999999/ns/cgroup",
    ),
    (
        "negative uid",
        lambda c: c["process"]["user"].update(uid=-1),
        "process.user.uid: must be a non-negative integer",
    ),
    (
        "bad memory limit",
        lambda c: c["linux"].update(resources={"memory": {"limit": "lots"}}),
        "linux.resources.memory.limit",
    ),
    (
        "missing program",
        lambda c: c["process"].update(args=["/bin/nosuch"]),
        "process.args[0]: /bin/nosuch: no such file or directory",
    ),
    (
        "program not in PATH",
        lambda c: c["process"].update(args=["nosuch"]),
        "process.args[0]: 'nosuch': executable file not found in $PATH",
    ),
    (
        "program not executable",
        lambda c: c["process"].update(args=["/etc/passwd"]),
        "process.args[0]: /etc/passwd: permission denied",
    ),
    (
        "rlimit above hard",
        lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "hard": 10**7, "soft": 10**7}]),
        "needs CAP_SYS_RESOURCE",
    ),
    (
        "relative mount",
        lambda c: c["mounts"].append({"destination": "data", "type": "tmpfs"}),
        "mounts[6].destination: must be an absolute path",
    ),
    (
        "bad mount type",
        lambda c: c["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "x"}),
        "mounts[6]",
    ),
    (
        "hostname without uts",
        lambda c: c["linux"].update(namespaces=[{"type": "mount"}]),
        "hostname: setting it needs a new uts namespace",
    ),
    (
        "net sysctl in the host's netns",
        lambda c: c["linux"].update(
            namespaces=[
                *(n for n in c["linux"]["namespaces"] if n["type"] != "network"),
                {"type": "network", "path": f"/proc/{os.getpid()}/ns/net"},
            ],
            sysctl={"net.ipv4.ping_group_range": "0 2147483647"},
        ),
        "linux.sysctl.net.ipv4.ping_group_range: linux.namespaces joins the host's network namespace",
    ),
    (
        "kernel.hostname against hostname",
        lambda c: c["linux"].update(sysctl={"kernel.hostname": "other"}),
        "linux.sysctl.kernel.hostname: 'other' conflicts with hostname 'ocirt'",
    ),
    (
        "kernel.domainname against domainname",
        lambda c: c.update(
            domainname="a.test", linux={**c["linux"], "sysctl": {"kernel.domainname": "b.test"}}
        ),
        "linux.sysctl.kernel.domainname: 'b.test' conflicts with domainname 'a.test'",
    ),
    (
        "host sysctl",
        lambda c: c["linux"].update(sysctl={"vm.swappiness": "10"}),
        "linux.sysctl.vm.swappiness: not a namespaced sysctl",
    ),
    (
        "masked without mount ns",
        lambda c: c.update(linux={"namespaces": [{"type": "uts"}], "maskedPaths": ["/proc/kcore"]}),
        "linux.maskedPaths: needs a mount namespace",
    ),
    ("terminal", lambda c: c["process"].update(terminal=True), "process.terminal"),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config(rt: Runtime, edit: Edit, expected: str) -> None:
    if "CAP_SYS_RESOURCE" in expected:
        hostfacts.require(
            not hostfacts.in_bounding_set(hostfacts.CAP_SYS_RESOURCE),
            "the runtime holds CAP_SYS_RESOURCE, which allows raising a hard rlimit",
        )
    bundle = rt.bundle(["true"], edit)
    fails_cleanly(rt, bundle, expected)


def test_bad_config_with_run(rt: Runtime) -> None:
    bundle = rt.bundle(["nosuch"])
    fails_cleanly(rt, bundle, "executable file not found", command="run")


def test_invalid_json(rt: Runtime) -> None:
    bundle = rt.bundle(["true"])
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.3.0",')
    fails_cleanly(rt, bundle, "config.json: (syntax): not valid JSON")


def test_missing_config(rt: Runtime) -> None:
    bundle = rt.bundle(["true"])
    os.unlink(os.path.join(bundle, "config.json"))
    fails_cleanly(rt, bundle, "config.json: No such file or directory")


def test_missing_rootfs(rt: Runtime) -> None:
    bundle = rt.bundle(["true"], lambda c: c["root"].update(path="nowhere"))
    fails_cleanly(rt, bundle, "nowhere")


def test_systemd_cgroup_without_systemd(rt: Runtime) -> None:
    hostfacts.require(not hostfacts.systemd_running(), "systemd runs here (/run/systemd/system)")
    bundle = rt.bundle(["true"], lambda c: c["linux"].update(cgroupsPath="system.slice:ocirt:x"))
    fails_cleanly(rt, bundle, "--systemd-cgroup: systemd is not running", "--systemd-cgroup")


def test_duplicate_id(rt: Runtime) -> None:
    bundle = rt.bundle(["sleep", "100"])
    cid = rt.new_id()
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    res = rt("create", "--bundle", bundle, cid)
    assert res.returncode == 1
    assert res.stderr == f"ocirt: container with id {cid!r} already exists\n"
    assert rt.state(cid)["status"] == "created"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["create", "--bundle", ".", "bad/id"], "invalid container id 'bad/id'"),
        (["create", "--bogus"], "flag provided but not defined: -bogus"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["state"], "state: missing argument <container-id>"),
        (["state", "ocirt-test-nonexistent"], "container 'ocirt-test-nonexistent' does not exist"),
        (["kill", "ocirt-test-nonexistent", "KILL"], "does not exist"),
        (["create", "--preserve-fds", "x", "id"], "invalid value 'x' for flag -preserve-fds"),
        (["list", "--format", "yaml"], "--format: unknown format 'yaml'"),
        (["--log-format", "xml", "list"], "--log-format: unknown format 'xml'"),
    ],
)
def test_bad_arguments(rt: Runtime, argv: list[str], expected: str) -> None:
    res = rt(*argv)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and expected in res.stderr, res.stderr


def test_json_log_gets_the_error(rt: Runtime) -> None:
    log = os.path.join(rt.workdir, "log.json")
    res = rt("--log", log, "--log-format", "json", "state", "ocirt-test-missing")
    assert res.returncode == 1
    with open(log) as f:
        entry = json.loads(f.read().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"] and entry["time"].endswith("Z")
