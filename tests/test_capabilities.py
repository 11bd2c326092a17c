"""Capabilities as runc applies them: a config straight from ``runc spec`` runs, and what
the kernel cannot grant is a warning, not a failed container (config.md since 1.1.0)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import pytest
from conftest import OCIRT, Runtime
from ocirt.runtime import syscalls
from ocirt.runtime.capabilities import NAMES
from ocirt.testing.bundle import make_rootfs, write_config
from support.runc import runc_run

CAP_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
SHOW_CAPS = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"


def runc_spec_bundle(rt: Runtime, args: list[str], user: dict[str, int] | None = None) -> str:
    """``runc spec``'s own config.json (terminal off, our args) over a busybox rootfs."""
    path = os.path.join(rt.workdir, f"runc-spec-{uuid.uuid4().hex[:8]}")
    os.makedirs(path)
    make_rootfs(os.path.join(path, "rootfs"))
    subprocess.run(["runc", "spec"], cwd=path, check=True)
    with open(os.path.join(path, "config.json")) as f:
        config: dict[str, Any] = json.load(f)
    assert "inheritable" not in config["process"]["capabilities"], "runc spec changed: revisit this test"
    assert config["process"]["capabilities"]["ambient"], "runc spec changed: revisit this test"
    config["process"].update(terminal=False, args=args)
    if user is not None:
        config["process"]["user"] = user
    write_config(path, config)
    return path


def cap_sets(out: str) -> dict[str, int]:
    sets = {key: int(value, 16) for key, value in (line.split(":\t") for line in out.splitlines())}
    assert sorted(sets) == sorted(CAP_LINES), out
    return sets


@pytest.mark.parametrize("user", [None, {"uid": 1000, "gid": 1000}], ids=["root", "uid-1000"])
def test_runc_spec_config_gets_runcs_capabilities(rt: Runtime, user: dict[str, int] | None) -> None:
    bundle = runc_spec_bundle(rt, ["sh", "-c", SHOW_CAPS], user)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    assert cap_sets(res.stdout) == cap_sets(runc_run(bundle))
    assert "level=warning" in res.stderr and "process.capabilities.ambient" in res.stderr, res.stderr


def _drop_sys_time() -> None:
    """The runtime's own bounding set without CAP_SYS_TIME, as in a restricted environment."""
    syscalls.prctl(syscalls.PR_CAPBSET_DROP, NAMES.index("CAP_SYS_TIME"))


def test_ungrantable_capabilities_are_warnings(rt: Runtime) -> None:
    wanted = ["CAP_CHOWN", "CAP_SYS_TIME", "CAP_NOT_A_CAPABILITY"]

    def edit(c: dict[str, Any]) -> None:
        c["process"]["capabilities"] = {
            key: list(wanted) for key in ("bounding", "effective", "permitted", "ambient")
        }

    bundle = rt.bundle(["sh", "-c", SHOW_CAPS], edit)
    log = os.path.join(rt.workdir, "ocirt.log")
    res = subprocess.run(
        [
            OCIRT,
            "--root",
            rt.root,
            "--log",
            log,
            "--log-format",
            "json",
            "run",
            "--bundle",
            bundle,
            rt.new_id(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_drop_sys_time,
    )
    assert res.returncode == 0, res.stderr
    chown = 1 << NAMES.index("CAP_CHOWN")
    assert cap_sets(res.stdout) == {
        "CapInh": 0,
        "CapPrm": chown,
        "CapEff": chown,
        "CapBnd": chown,
        "CapAmb": 0,
    }
    with open(log) as f:
        warnings = [entry["msg"] for entry in map(json.loads, f) if entry["level"] == "warning"]
    text = "\n".join(warnings)
    for key in ("bounding", "effective", "permitted", "ambient"):
        assert f"process.capabilities.{key}: ignoring capabilities this kernel does not know: " in text, text
        assert f"process.capabilities.{key}: ignoring CAP_SYS_TIME: cannot be granted" in text, text
    assert "process.capabilities.ambient: ignoring CAP_CHOWN: cannot be granted" in text, text


def test_exec_process_with_unknown_capability_runs(rt: Runtime) -> None:
    cid = rt.new_id()
    res = rt("run", "-d", "--bundle", rt.bundle(["sleep", "1000"]), cid)
    assert res.returncode == 0, res.stderr
    process = {
        "args": ["sh", "-c", "grep CapEff /proc/self/status"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "capabilities": {key: ["CAP_KILL", "CAP_FLY"] for key in ("bounding", "effective", "permitted")},
    }
    path = os.path.join(rt.workdir, "process.json")
    with open(path, "w") as f:
        json.dump(process, f)
    res = rt("exec", "--process", path, cid)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[1], 16) == 1 << NAMES.index("CAP_KILL")
    assert "CAP_FLY" in res.stderr and "level=warning" in res.stderr, res.stderr
