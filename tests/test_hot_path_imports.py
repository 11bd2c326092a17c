"""The runtime's import budget (docs/architecture.md): each hot-path command imports what it
needs and nothing else. The real CLI runs as the ``ocirt`` launcher runs it (``-IS -c``
with its code) plus ``-X importtime``, which names every module the process and its forked
children load; what a bare interpreter loads at start-up is not counted."""

from __future__ import annotations

import subprocess
import sys

from conftest import OCIRT, Runtime
from ocirt.runtime.launcher import launcher_code

# what each command may import beyond the interpreter's own start-up
_CORE = {
    "__future__",
    "_collections_abc",
    "_stat",
    "atexit",
    "genericpath",
    "os",
    "posixpath",
    "stat",
    "_json",
    "_signal",
    "time",
    "ocirt",
    "ocirt.foundation",
    "ocirt.foundation.errors",
    "ocirt.foundation.fastjson",
    "ocirt.foundation.procfs",
    "ocirt.foundation.timefmt",
    "ocirt.runtime",
    "ocirt.runtime.api",
    "ocirt.runtime.cli",
    "ocirt.runtime.errors",
    "ocirt.runtime.log",
    "ocirt.runtime.operations",
    "ocirt.runtime.state",
}
_CGROUPS = {
    "errno",
    "ocirt.runtime.cgroups",
    "ocirt.runtime.cgroups.base",
    "ocirt.runtime.cgroups.devices",
    "ocirt.runtime.cgroups.v1",
    "ocirt.runtime.cgroups.v2",
}
BUDGET = {
    "create": _CORE
    | _CGROUPS
    | {
        "_cffi_backend",
        "ocirt.foundation.mountinfo",
        "_socket",
        "_struct",
        "fcntl",
        "resource",
        "select",
        "struct",
        "ocirt.runtime._syscalls",
        "ocirt.runtime.cgroups.resources",
        "ocirt.runtime.console",
        "ocirt.runtime.devices",
        "ocirt.runtime.features",
        "ocirt.runtime.hooks",
        "ocirt.runtime.lsm",
        "ocirt.runtime.mempolicy",
        "ocirt.runtime.copyup",
        "ocirt.runtime.mountopts",
        "ocirt.runtime.mounts",
        "ocirt.runtime.namespaces",
        "ocirt.runtime.operations.create",
        "ocirt.runtime.operations.delete",
        "ocirt.runtime.paths",
        "ocirt.runtime.procattrs",
        "ocirt.runtime.process",
        "ocirt.runtime.process.become",
        "ocirt.runtime.process.channel",
        "ocirt.runtime.process.init",
        "ocirt.runtime.process.intermediate",
        "ocirt.runtime.process.launch",
        "ocirt.runtime.process.parent",
        "ocirt.runtime.rootfs",
        "ocirt.runtime.seccomp",
        "ocirt.runtime.syscalls",
        "ocirt.specs",
        "ocirt.specs.config",
    },
    "start": _CORE | {"select", "ocirt.runtime.operations.start"},
    # paused or not, read without the cgroup drivers (cgroups.base.saved_frozen)
    "state": _CORE | {"errno", "ocirt.runtime.cgroups", "ocirt.runtime.cgroups.base", "pwd"},
    "kill": _CORE | _CGROUPS | {"ocirt.runtime.operations.kill", "ocirt.foundation.signals"},
    "delete": _CORE | _CGROUPS | {"fcntl", "ocirt.runtime.operations.delete"},
}
# the modules docs/architecture.md names: 5 to 30 ms each on the machines we measure on
NEVER = {"json", "re", "typing", "dataclasses", "enum", "argparse", "signal", "subprocess"}


def imported(stderr: str) -> set[str]:
    return {
        line.rpartition("|")[2].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "cumulative" not in line
    }


def test_hot_path_commands_import_only_their_budget(rt: Runtime) -> None:
    command = [sys.executable, "-X", "importtime", "-IS", "-c", launcher_code(OCIRT)]
    startup = imported(subprocess.run([*command[:4], "-c", "pass"], capture_output=True, text=True).stderr)
    assert "encodings" in startup  # -X importtime does report
    rt.command = command
    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "100"])
    steps = [
        ("create", ["create", "--bundle", bundle, cid]),
        ("start", ["start", cid]),
        ("state", ["state", cid]),
        ("kill", ["kill", cid, "KILL"]),
        ("delete", ["delete", "--force", cid]),
    ]
    for name, args in steps:
        done = rt(*args)
        assert done.returncode == 0, done.stderr[-2000:]
        loaded = imported(done.stderr) - startup
        assert "ocirt.runtime.cli" in loaded, f"{name}: importtime saw no ocirt module"
        assert not loaded & NEVER, f"{name} imports {sorted(loaded & NEVER)}"
        assert sorted(loaded - BUDGET[name]) == [], f"{name} imports beyond its budget"
