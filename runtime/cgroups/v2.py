"""cgroup v2: one directory in the unified hierarchy.

The freezer and ``cgroup.kill`` helpers take a bare directory, because the v1 driver uses
them too, on its directory in the unified hierarchy of a hybrid host.
"""

from __future__ import annotations

import errno
import os
import time

from ocirt.runtime.cgroups import devices
from ocirt.runtime.cgroups.base import (
    ROOT,
    Cgroup,
    is_frozen,
    makedirs,
    own_cgroups,
    place,
    procs_under,
    read_file,
    write_file,
)
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FREEZE_TIMEOUT = 5.0


class V2Cgroup(Cgroup):
    """``path``: the container's directory; ``root``: where its hierarchy is mounted."""

    __slots__ = ("dir", "root")
    version = 2

    def __init__(self, path: str, root: str = ROOT) -> None:
        super().__init__({"": path})
        self.dir = path
        self.root = root

    def create(self) -> None:
        makedirs(self.dir)
        levels = [self.root]
        between = os.path.relpath(os.path.dirname(self.dir), self.root)
        if between != ".":
            for part in between.split("/"):
                levels.append(os.path.join(levels[-1], part))
        for level in levels:
            enable_controllers(level)

    def apply(self, resources: dict[str, Any] | None) -> None:
        """Device rules apply even without resources, as on v1: runc's default list always
        does. Everything is checked before the program is attached or a file written."""
        from ocirt.runtime.cgroups.bpf import set_v2
        from ocirt.runtime.cgroups.resources import optional, v2_writes

        rules = devices.parse(resources)
        writes = v2_writes(resources or {})
        set_v2(self.dir, rules)
        check = ((resources or {}).get("memory") or {}).get("checkBeforeUpdate") is True
        for (name, value), field in zip(writes, writes.fields, strict=True):
            path = os.path.join(self.dir, name)
            if check and name == "memory.max":
                self._check_usage(field, value)
            try:
                write_file(path, value)
            except FileNotFoundError:
                if optional(name, value):
                    continue
                raise OcirtError(f"{field}: {_missing(path, name)}") from None
            except OSError as exc:
                raise OcirtError(f"{field}: writing {value!r} to {path}: {exc.strerror}") from None

    def _check_usage(self, field: str, limit: str) -> None:
        """cgroup v2 does not refuse a limit below the usage, it OOM-kills: refuse it here."""
        try:
            usage = int(read_file(os.path.join(self.dir, "memory.current")))
        except FileNotFoundError:
            return
        if limit != "max" and int(limit) < usage:
            raise OcirtError(f"{field}: {limit} is below the current usage of {self.dir} ({usage})")

    def pids(self) -> list[int]:
        return procs_under(self.dir)

    def freeze(self) -> None:
        freeze_dir(self.dir)

    def thaw(self) -> None:
        set_freeze(self.dir, "0")

    def frozen(self) -> bool:
        return is_frozen(self.dir)

    def can_freeze(self) -> bool:
        return True

    def kill_with_cgroup_kill(self) -> bool:
        return kill_dir(self.dir)

    def layout(self) -> dict[str, Any]:
        return {"version": 2, "path": self.dir, "root": self.root}

    def tracking_dir(self) -> str:
        return self.dir


def open_v2(inner: str, root: str = ROOT) -> V2Cgroup:
    own = "/" if inner.startswith("/") else own_cgroups().get("", "/")
    return V2Cgroup(place(root, "/", inner, own), root)


def enable_controllers(level: str) -> None:
    """Every controller ``level`` offers, as runc does, so any later resource finds its files.

    One that cannot be enabled (a parent with members of its own, say) is skipped here; the
    resource that needs it fails in ``apply`` with its field named.
    """
    control = os.path.join(level, "cgroup.subtree_control")
    try:
        available = read_file(os.path.join(level, "cgroup.controllers")).split()
        enabled = read_file(control).split()
    except OSError as exc:
        raise OcirtError(f"reading the controllers of {level}: {exc.strerror}") from None
    missing = [f"+{name}" for name in available if name not in enabled]
    if not missing:
        return
    try:
        write_file(control, " ".join(missing))
    except OSError:
        for one in missing:
            _try_write(control, one)


def _try_write(path: str, value: str) -> None:
    try:
        write_file(path, value)
    except OSError:
        return


def _missing(path: str, name: str) -> str:
    controller = name.split(".", 1)[0]
    if controller == "cgroup":
        return f"{path} does not exist"
    return f"{path} does not exist: the {controller} controller is not enabled there"


def set_freeze(path: str, value: str) -> None:
    try:
        write_file(os.path.join(path, "cgroup.freeze"), value)
    except OSError as exc:
        raise OcirtError(f"writing {value} to {path}/cgroup.freeze: {exc.strerror}") from None


def freeze_dir(path: str) -> None:
    """Writing ``cgroup.freeze`` only starts freezing; ``cgroup.events`` says when it is done."""
    import select

    set_freeze(path, "1")
    fd = os.open(os.path.join(path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while b"\nfrozen 1\n" not in b"\n" + os.pread(fd, 4096, 0):
            left = deadline - time.monotonic()
            if left <= 0:
                set_freeze(path, "0")
                raise OcirtError(f"freezing {path}: not frozen after {FREEZE_TIMEOUT:g}s")
            poller.poll(min(left, 0.1) * 1000)
    finally:
        os.close(fd)


def kill_dir(path: str) -> bool:
    """SIGKILL every member and descendant at once (Linux 5.14); False where unsupported."""
    try:
        write_file(os.path.join(path, "cgroup.kill"), "1")
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ENODEV:  # removed meanwhile (an emptied systemd scope): no one left
            return True
        raise OcirtError(f"writing 1 to {path}/cgroup.kill: {exc.strerror}") from None
    return True
