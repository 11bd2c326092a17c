"""Hostile input and faults mid-flight, each once: one line naming the field, exit status 1,
nothing left behind, and ``delete --force`` that always ends with nothing left.

runc answers each of these with one line; the expected texts here name the config field
by its JSON path, as the runtime-spec writes it, and the escapes are Python's own.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from conftest import Runtime, cgroup_dirs
from test_errors import Edit, fails_cleanly


def _add_mount(**fields: Any) -> Edit:
    return lambda c: c["mounts"].append({"destination": "/x", "type": "tmpfs", "source": "x", **fields})


CASES: list[tuple[str, Edit, str]] = [
    ("NUL in cgroupsPath", lambda c: c["linux"].update(cgroupsPath="ocirt-test-a\0b"), "linux.cgroupsPath:"),
    ("surrogate in cgroupsPath", lambda c: c["linux"].update(cgroupsPath="a\ud800"), "linux.cgroupsPath:"),
    ("surrogate in annotations", lambda c: c.update(annotations={"k": "\ud800"}), "annotations.k:"),
    ("NUL in root.path", lambda c: c["root"].update(path="root\0fs"), "root.path:"),
    ("surrogate in destination", _add_mount(destination="/x\udfff"), "mounts[6].destination:"),
    (
        "rlimit of 2^64",
        lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "hard": 2**64, "soft": 1}]),
        "process.rlimits[0].hard:",
    ),
    ("uid of 2^32", lambda c: c["process"]["user"].update(uid=2**32), "process.user.uid:"),
    ("gid of 2^40", lambda c: c["process"]["user"].update(gid=2**40), "process.user.gid:"),
    (
        "additional gid of 2^32",
        lambda c: c["process"]["user"].update(additionalGids=[2**32]),
        "process.user.additionalGids[0]:",
    ),
    (
        "device major of 2^64",
        lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": 2**64, "minor": 1}]),
        "linux.devices[0].major:",
    ),
    (
        "5000-character cgroupsPath",
        lambda c: c["linux"].update(cgroupsPath="/ocirt-test-long/" + "/".join(["d" * 200] * 25)),
        "linux.cgroupsPath:",
    ),
    (
        "300-character cgroup name",
        lambda c: c["linux"].update(cgroupsPath="ocirt-test-" + "n" * 300),
        "linux.cgroupsPath:",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_field_is_one_line_naming_it(rt: Runtime, edit: Edit, expected: str) -> None:
    line = fails_cleanly(rt, rt.bundle(["true"], edit), f"config.json: {expected}")
    assert "internal error" not in line and len(line) < 1024, line


def test_deeply_nested_json(rt: Runtime) -> None:
    bundle = rt.bundle(["true"])
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write("[" * 100_000 + "]" * 100_000)
    fails_cleanly(rt, bundle, "config.json: (syntax): not valid JSON")


def test_huge_error_from_init_is_one_bounded_line(rt: Runtime) -> None:
    """Init's error echoes the 70 000-character type: more than the sync channel's 64 KiB."""
    line = fails_cleanly(rt, rt.bundle(["true"], _add_mount(type="t" * 70_000)), "mounts[6]")
    assert len(line) < 8192, len(line)


def test_newline_in_input_cannot_forge_a_line(rt: Runtime) -> None:
    forged = "ocirt: container started\x1b[2K"
    bundle = rt.bundle(["true"], _add_mount(options=[f"size=1\n{forged}"]))
    line = fails_cleanly(rt, bundle, "mounts[6]")
    assert "\\nocirt: container started\\x1b[2K" in line, line


def test_log_file_escapes_too(rt: Runtime) -> None:
    bundle = rt.bundle(["true"], _add_mount(options=["size=1\nforged"]))
    log = os.path.join(rt.workdir, "log")
    fails_cleanly(rt, bundle, "mounts[6]", "--log", log)
    with open(log) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and "size=1\\\\nforged" in lines[0], lines


def test_hook_timeout_holds_with_large_state(rt: Runtime) -> None:
    """The state (with 200 KB of annotations) is more than a pipe holds: the hook never reads
    it, and the timeout must still end the wait after one second, not the hook's thirty."""

    def edit(c: dict[str, Any]) -> None:
        c["annotations"] = {"big": "x" * 200_000}
        c["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}

    bundle = rt.bundle(["true"], edit)
    began = time.monotonic()
    line = fails_cleanly(rt, bundle, "hooks.createRuntime[0] (/bin/sleep): timed out after 1s")
    assert time.monotonic() - began < 10, line


def test_delete_force_of_paused_container_is_quick(rt: Runtime) -> None:
    bundle = rt.bundle(["sleep", "1000"])
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    assert rt("pause", cid).returncode == 0
    assert rt.state(cid)["status"] == "paused"
    began = time.monotonic()
    res = rt("delete", "--force", cid)
    took = time.monotonic() - began
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert took < 1.5, f"delete --force of a paused container took {took:.2f}s"
    assert cgroup_dirs(cid) == [] and not os.path.exists(os.path.join(rt.root, cid))


def test_rlimit_of_2_to_the_64_minus_1_is_unlimited(rt: Runtime) -> None:
    """runc's configs write RLIM_INFINITY as the kernel's u64 all-ones; the kernel then says
    "unlimited" in /proc/<pid>/limits. The hard limit is raised only as far as ours goes."""
    with open("/proc/self/limits") as f:
        ours = next(line.split()[5] for line in f if line.startswith("Max core file size"))
    cid = rt.new_id()
    limit = {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1}
    if ours != "unlimited":
        limit["hard"] = limit["soft"] = 2**63  # above any real limit: refused, by name
    bundle = rt.bundle(["sleep", "1000"], lambda c: c["process"].update(rlimits=[limit]))
    res = rt("create", "--bundle", bundle, cid)
    if ours != "unlimited":
        assert res.returncode == 1 and res.stderr.startswith("ocirt: config.json: process.rlimits[0]")
        return
    assert res.returncode == 0, res.stderr
    with open(f"/proc/{rt.state(cid)['pid']}/limits") as f:
        line = next(line for line in f if line.startswith("Max core file size"))
    assert line.split()[4:6] == ["unlimited", "unlimited"], line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"cpu": {"cpus": "\\ud800"}}', "ocirt: linux.resources.cpu.cpus: is not valid Unicode"),
        (b'{"pids": {"limit": 184467440737095516150}}', "ocirt: linux.resources.pids.limit: "),
        (b'{"cpu": {"cpus": "\xff"}}', "ocirt: --resources "),
        (b"[" * 100_000, "ocirt: --resources "),
    ],
    ids=["surrogate", "beyond 64 bits", "not UTF-8", "deep"],
)
def test_update_resources_file_is_checked_as_config_is(rt: Runtime, content: bytes, expected: str) -> None:
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", rt.bundle(["sleep", "1000"]), cid).returncode == 0
    path = os.path.join(rt.workdir, "resources.json")
    with open(path, "wb") as f:
        f.write(content)
    res = rt("update", "--resources", path, cid)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(expected) and "internal error" not in res.stderr, res.stderr


def test_delete_force_does_not_wait_forever_for_a_stuck_create(rt: Runtime) -> None:
    """A create stuck in a hook that never ends holds the container's lock; delete --force
    waits a while, then removes the container anyway, and the create, once its hook is
    gone, undoes its own part: nothing is left either way."""
    import subprocess

    from conftest import OCIRT

    started = os.path.join(rt.workdir, "hook-started")
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {started}; exec sleep 1000"]}
    bundle = rt.bundle(["sleep", "1000"], lambda c: c.update(hooks={"createRuntime": [hook]}))
    cid = rt.new_id()
    create = subprocess.Popen(
        [OCIRT, "--root", rt.root, "create", "--bundle", bundle, cid], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.01)
        began = time.monotonic()
        res = rt("delete", "--force", cid)
        took = time.monotonic() - began
        assert res.returncode == 0 and res.stderr == "", res.stderr
        assert 4 < took < 15, f"delete --force took {took:.1f}s"
        assert not os.path.exists(os.path.join(rt.root, cid)) and cgroup_dirs(cid) == []
    finally:
        with open(f"/proc/{create.pid}/task/{create.pid}/children") as f:
            for pid in f.read().split():
                os.kill(int(pid), 9)  # the hook, our create's child
        _, err = create.communicate(timeout=30)
    assert create.returncode == 1 and err.count("\n") == 1 and "hooks.createRuntime[0]" in err, err
