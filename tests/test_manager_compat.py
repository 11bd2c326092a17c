"""Runtime behaviour the managers depend on beyond the spec, found running them on ocirt.

Each test pins what podman, containerd's runc shim or Docker read from the runtime (exact
words in an error, accepted arguments); ``tests/integration`` runs the managers themselves.
"""

from __future__ import annotations

import os
import time

from conftest import Runtime


def _run_detached(rt: Runtime, script: str) -> str:
    cid = rt.new_id()
    res = rt("run", "-d", "--bundle", rt.bundle(["sh", "-c", script]), cid)
    assert res.returncode == 0, res.stderr
    return cid


def _wait_stopped(rt: Runtime, cid: str) -> None:
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.05)


def test_kill_of_a_finished_container_says_container_not_running(rt: Runtime) -> None:
    """containerd's shim maps "container not running" to NotFound ("process already
    finished"), which Docker's stop and kill expect when a container exits meanwhile; any
    other words make them fail."""
    cid = _run_detached(rt, "exit 0")
    _wait_stopped(rt, cid)
    for signal in ("TERM", "KILL", "0"):
        res = rt("kill", cid, signal)
        assert res.returncode == 1, res
        assert "container not running" in res.stderr, res.stderr
        assert len(res.stderr.splitlines()) == 1
    assert rt("kill", "--all", cid, "KILL").returncode == 0, "kill --all of a stopped container failed"
    assert rt("delete", cid).returncode == 0


def test_signal_zero_checks_the_init_without_signalling_it(rt: Runtime) -> None:
    """As kill(2) and runc: signal 0 is accepted and delivers nothing."""
    cid = _run_detached(rt, 'trap "exit 9" TERM HUP INT; while :; do sleep 0.05; done')
    pid = rt.state(cid)["pid"]
    res = rt("kill", cid, "0")
    assert res.returncode == 0, res.stderr
    assert rt("kill", "--all", cid, "0").returncode == 0
    time.sleep(0.2)
    assert rt.state(cid)["status"] == "running"
    assert os.path.exists(f"/proc/{pid}")
    assert rt("kill", cid, "KILL").returncode == 0
    _wait_stopped(rt, cid)
