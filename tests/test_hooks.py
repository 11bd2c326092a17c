"""Hooks run at the spec's points, in order, with the state on stdin; failures as 1.3 says."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from conftest import Runtime, cgroup_dirs
from support.runc import runc_run

ORDER = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def recorder(kind: str, log: str, **extra: Any) -> dict[str, Any]:
    """A hook that appends ``<kind> <state json>`` to ``log``."""
    script = f's=$(cat); echo "{kind} $s" >> {log}'
    return {"path": "/bin/sh", "args": ["sh", "-c", script], **extra}


def with_hooks(rt: Runtime, hooks: dict[str, list[dict[str, Any]]], args: list[str]) -> str:
    logdir = os.path.join(rt.workdir, "hooklog")
    os.makedirs(logdir, exist_ok=True)

    def edit(c: dict[str, Any]) -> None:
        c["hooks"] = hooks
        c["mounts"].append(
            {"destination": "/hooklog", "type": "bind", "source": logdir, "options": ["rbind"]}
        )

    return rt.bundle(args, edit)


def entries(path: str) -> list[tuple[str, dict[str, Any]]]:
    with open(path) as f:
        return [(kind, json.loads(state)) for kind, state in (line.split(" ", 1) for line in f)]


def test_every_hook_in_order_with_state(rt: Runtime) -> None:
    log = os.path.join(rt.workdir, "hooklog", "log")
    hooks = {kind: [recorder(kind, log)] for kind in ORDER}
    hooks["startContainer"] = [recorder("startContainer", "/hooklog/log")]
    bundle = with_hooks(rt, hooks, ["sleep", "1000"])
    cid = rt.new_id()
    res = rt("create", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    pid = rt.state(cid)["pid"]
    assert [k for k, _ in entries(log)] == ORDER[:3]
    assert rt("start", cid).returncode == 0
    assert rt("delete", "--force", cid).returncode == 0
    seen = entries(log)
    assert [k for k, _ in seen] == ORDER
    statuses = {k: s["status"] for k, s in seen}
    assert statuses == {
        "prestart": "creating",
        "createRuntime": "creating",
        "createContainer": "creating",
        "startContainer": "created",
        "poststart": "running",
        "poststop": "stopped",
    }
    pids = {k: s["pid"] for k, s in seen}
    assert pids["prestart"] == pids["createRuntime"] == pids["poststart"] == pid
    assert pids["createContainer"] == pids["startContainer"] == 1, "container hooks see the container's pid"
    assert all(s["id"] == cid and s["bundle"] == bundle for _, s in seen)


def test_create_hook_failure_fails_create_and_cleans_up(rt: Runtime) -> None:
    log = os.path.join(rt.workdir, "hooklog", "log")
    hooks = {
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]}],
        "poststop": [recorder("poststop", log)],
    }
    bundle = with_hooks(rt, hooks, ["true"])
    cid = rt.new_id()
    res = rt("create", "--bundle", bundle, cid)
    assert res.returncode == 1
    assert res.stderr == "ocirt: hooks.createRuntime[0] (/bin/sh): exit status 3: broken\n"
    assert not os.path.exists(os.path.join(rt.root, cid)) and cgroup_dirs(cid) == []
    assert [k for k, _ in entries(log)] == ["poststop"]


def test_start_container_hook_failure_fails_start(rt: Runtime) -> None:
    hooks = {"startContainer": [{"path": "/bin/false"}]}
    bundle = with_hooks(rt, hooks, ["sh", "-c", "touch /tmp/ran"])
    cid = rt.new_id()
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    res = rt("start", cid)
    assert res.returncode == 1 and "hooks.startContainer[0] (/bin/false): exit status 1" in res.stderr
    deadline = time.monotonic() + 5
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert not os.path.exists(os.path.join(bundle, "rootfs/tmp/ran")), "the program ran after a failed hook"


def alive(pid: int) -> bool:
    """Running or sleeping: a killed init may stay a zombie until its reaper gets to it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_poststart_failure_stops_and_deletes_the_container(rt: Runtime) -> None:
    """runtime-spec 1.3 (runtime.md Lifecycle 9): an error, the container stopped, then
    destroyed (12) with its poststop hooks (13); the remaining poststart hooks do not run."""
    log = os.path.join(rt.workdir, "hooklog", "log")
    hooks = {
        "poststart": [{"path": "/bin/false"}, recorder("poststart", log)],
        "poststop": [recorder("poststop", log)],
    }
    bundle = with_hooks(rt, hooks, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    pid = rt.state(cid)["pid"]
    started = rt("start", cid)
    assert started.returncode == 1
    assert started.stderr == "ocirt: hooks.poststart[0] (/bin/false): exit status 1\n"
    assert rt("state", cid).returncode == 1, "the container is still there"
    assert cgroup_dirs(cid) == [] and not alive(pid), "the container's init is still running"
    assert [k for k, _ in entries(log)] == ["poststop"]


def test_poststart_failure_under_run_runs_poststop_once(rt: Runtime) -> None:
    log = os.path.join(rt.workdir, "hooklog", "log")
    hooks = {"poststart": [{"path": "/bin/false"}], "poststop": [recorder("poststop", log)]}
    for detach in ([], ["-d"]):
        cid = rt.new_id()
        res = rt("run", *detach, "--bundle", with_hooks(rt, hooks, ["sleep", "1000"]), cid)
        assert res.returncode == 1 and res.stderr.startswith("ocirt: hooks.poststart[0]"), res.stderr
        assert rt("state", cid).returncode == 1 and cgroup_dirs(cid) == []
    assert [k for k, _ in entries(log)] == ["poststop", "poststop"]


def test_poststop_failure_is_a_warning(rt: Runtime) -> None:
    hooks = {"poststop": [{"path": "/bin/false"}]}
    bundle = with_hooks(rt, hooks, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    deleted = rt("delete", "--force", cid)
    assert deleted.returncode == 0 and "hooks.poststop[0]" in deleted.stderr


def test_hook_without_env_inherits_the_runtimes_as_runc(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCIRT_TEST_HOOK_VAR", "from-the-runtime")
    outs = {name: os.path.join(rt.workdir, "hooklog", name) for name in ("ocirt", "runc", "given")}
    script = 'echo "${OCIRT_TEST_HOOK_VAR:-unset}" > "$0"'
    hooks = {
        "prestart": [
            {"path": "/bin/sh", "args": ["sh", "-c", script, outs["ocirt"]]},
            {"path": "/bin/sh", "args": ["sh", "-c", script, outs["given"]], "env": ["OTHER=1"]},
        ]
    }
    bundle = with_hooks(rt, hooks, ["true"])
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    hooks["prestart"] = [{"path": "/bin/sh", "args": ["sh", "-c", script, outs["runc"]]}]
    runc_run(with_hooks(rt, hooks, ["true"]))
    seen = {}
    for name, path in outs.items():
        with open(path) as f:
            seen[name] = f.read().strip()
    assert seen == {"ocirt": "from-the-runtime", "runc": "from-the-runtime", "given": "unset"}


def test_hook_timeout_and_env(rt: Runtime) -> None:
    out = os.path.join(rt.workdir, "hooklog", "env")
    hooks: dict[str, list[dict[str, Any]]] = {
        "prestart": [
            {"path": "/bin/sh", "args": ["sh", "-c", f"echo $GREETING > {out}"], "env": ["GREETING=hi"]}
        ],
        "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}],
    }
    bundle = with_hooks(rt, hooks, ["true"])
    start = time.monotonic()
    res = rt("create", "--bundle", bundle, rt.new_id())
    assert res.returncode == 1 and "hooks.createRuntime[0] (/bin/sleep): timed out after 1s" in res.stderr
    assert time.monotonic() - start < 5
    with open(out) as f:
        assert f.read() == "hi\n"


def test_bad_hook_config(rt: Runtime) -> None:
    bundle = with_hooks(rt, {"prestart": [{"path": "relative/hook"}]}, ["true"])
    res = rt("create", "--bundle", bundle, rt.new_id())
    assert res.returncode == 1
    assert res.stderr == "ocirt: config.json: hooks.prestart[0].path: must be an absolute path\n"
