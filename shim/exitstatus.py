"""The exit status of the container's init, its OOM verdict, and the atomic exit file."""

from __future__ import annotations

import os

from ocirt.foundation import fastjson
from ocirt.foundation.timefmt import rfc3339nano
from ocirt.shim.protocol import EXIT_FILE


def oom_counter(pid: int) -> str | None:
    """The file whose ``oom_kill`` line counts OOM kills in ``pid``'s memory cgroup:
    v1 ``memory.oom_control`` when the memory controller is on v1, else v2 ``memory.events``."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    v2 = None
    for line in lines:
        hid, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return f"/sys/fs/cgroup/memory{path}/memory.oom_control"
        if hid == "0":
            v2 = path
    if v2 is None:
        return None
    for top in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        candidate = f"{top}{v2}/memory.events"
        if os.path.exists(candidate):
            return candidate
    return None


def oom_kills(path: str | None) -> int:
    if path is None:
        return 0
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except OSError:
        pass
    return 0


def status_dict(wait_status: int, oom_killed: bool, exited_ns: int) -> dict[str, object]:
    if os.WIFSIGNALED(wait_status):
        sig: int | None = os.WTERMSIG(wait_status)
        code = 128 + os.WTERMSIG(wait_status)
    else:
        sig, code = None, os.WEXITSTATUS(wait_status)
    return {"exit_code": code, "signal": sig, "oom_killed": oom_killed, "exited_at": rfc3339nano(exited_ns)}


def write_exit_file(state_dir: str, status: dict[str, object]) -> None:
    """Written beside, fsynced and renamed: a reader sees the whole file or none."""
    final = os.path.join(state_dir, EXIT_FILE)
    tmp = final + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, fastjson.dumps(status).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
