"""``ocirt.runtime.api``: the lifecycle driven from Python in this test process, without
spawning ``ocirt``, seen from outside by the CLI (``ocirt state``) and the kernel (/proc);
and a failure whose cleanup fails too reports both."""

from __future__ import annotations

import json
import os
import time

import pytest
from conftest import Runtime
from ocirt.runtime import api
from ocirt.runtime.errors import CleanupError, OcirtError


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")[:-1]


def _wait_stopped(rt: api.Runtime, cid: str) -> None:
    deadline = time.monotonic() + 10
    while api.state(rt, cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "the killed container never stopped"
        time.sleep(0.02)


def test_lifecycle_in_process(rt: Runtime) -> None:
    cid = rt.new_id()
    handle = api.Runtime(rt.root)
    threads_before = os.listdir(f"/proc/{os.getpid()}/task")
    api.create(handle, cid, api.CreateOptions(rt.bundle(["sleep", "100"])))
    created = api.state(handle, cid)
    shown = rt("state", cid)
    assert shown.returncode == 0 and json.loads(shown.stdout) == created
    assert created["status"] == "created" and created["id"] == cid
    # blocked before its program: still the runtime's code, not sleep
    assert _cmdline(created["pid"])[:1] != ["sleep"]
    bundle = created["bundle"]
    assert api.validate(bundle) == []
    listed = json.loads(rt("list", "--format", "json").stdout)
    assert api.list_containers(handle) == listed and [s["id"] for s in listed] == [cid]
    assert api.ps(handle, cid) == json.loads(rt("ps", "--format", "json", cid).stdout) == [created["pid"]]
    api.start(handle, cid)
    assert api.state(handle, cid)["status"] == "running"
    deadline = time.monotonic() + 10
    while _cmdline(created["pid"]) != ["sleep", "100"]:
        assert time.monotonic() < deadline, _cmdline(created["pid"])
        time.sleep(0.02)
    api.pause(handle, cid)
    assert json.loads(rt("state", cid).stdout)["status"] == "paused"
    api.resume(handle, cid)
    api.kill(handle, cid, "KILL")
    _wait_stopped(handle, cid)
    api.delete(handle, cid)
    gone = rt("state", cid)
    assert gone.returncode == 1 and "does not exist" in gone.stderr, gone.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    # the test process is left as it was: no thread, and no child of ours remains
    assert os.listdir(f"/proc/{os.getpid()}/task") == threads_before
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_errors_are_raised_not_printed(rt: Runtime) -> None:
    handle = api.Runtime(rt.root)
    with pytest.raises(OcirtError, match="does not exist"):
        api.start(handle, rt.new_id())
    with pytest.raises(OcirtError, match="--rootless: invalid value 'maybe'"):
        api.Runtime(rt.root, rootless="maybe")


def test_a_failed_cleanup_is_reported_with_the_failure(rt: Runtime) -> None:
    """A createRuntime hook fails after leaving a file in the state directory, which then
    cannot be removed: the one error line names the hook's failure and the cleanup's."""
    cid = rt.new_id()
    junk = os.path.join(rt.root, cid, "junk")
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {junk}; exit 3"]}
    bundle = rt.bundle(["true"], lambda c: c.update(hooks={"createRuntime": [hook]}))
    done = rt("create", "--bundle", bundle, cid)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    state_dir = os.path.dirname(junk)
    assert lines[0] == (
        f"ocirt: hooks.createRuntime[0] (/bin/sh): exit status 3; cleaning up failed too: "
        f"{state_dir}: Directory not empty"
    ), lines[0]
    os.unlink(junk)
    os.rmdir(os.path.dirname(junk))
    # the same through the API: both failures kept, as objects
    with pytest.raises(CleanupError) as err:
        api.create(api.Runtime(rt.root), cid, api.CreateOptions(bundle))
    assert isinstance(err.value.original, OcirtError) and "hooks.createRuntime[0]" in str(err.value.original)
    assert isinstance(err.value.cleanup, OSError) and err.value.cleanup.strerror == "Directory not empty"
    os.unlink(junk)
    os.rmdir(os.path.dirname(junk))
