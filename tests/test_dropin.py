"""Where ocirt must behave as runc (or crun, where runc has no answer) does, end to end."""

from __future__ import annotations

from typing import Any

from conftest import Runtime


def test_pids_limit_zero_is_a_limit_applied_after_the_runtime_forks(rt: Runtime) -> None:
    """runtime-spec 1.3: 0 is a real limit. The runtime still forks its init; the container
    then cannot fork at all (the kernel's refusal, EAGAIN, ends busybox sh)."""

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"pids": {"limit": 0}}

    bundle = rt.bundle(["sh", "-c", "echo in; /bin/true; echo after"], edit)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert (res.stdout, res.returncode) == ("in\n", 2), res.stderr
    assert "can't fork: Resource temporarily unavailable" in res.stderr


def _no_proc(c: dict[str, Any]) -> None:
    c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]


def test_a_config_without_proc_runs(rt: Runtime) -> None:
    """The runtime needs no /proc inside the container after pivot_root (it reaches the exec
    fifo through the state directory it holds), so create, state and start behave."""
    bundle = rt.bundle(["sh", "-c", "ls -A /proc | wc -l; echo hi"], _no_proc)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert (res.returncode, res.stdout.split()) == (0, ["0", "hi"]), res.stderr
    cid = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["true"], _no_proc), cid)
    assert res.returncode == 0, res.stderr
    assert rt.state(cid)["status"] == "created"
    res = rt("start", cid)
    assert res.returncode == 0, res.stderr
