"""Namespaces of the container: which to create, which to join, and in what order.

Paths are opened in the parent, before any fork, so that a bad path fails early with its
name, and so the files stay reachable after the children have changed their own view.
The user namespace is joined first: namespaces a pod shares are usually owned by it, and
joining them needs CAP_SYS_ADMIN inside it.
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.specs.config import IDMapping, Linux

CLONE_FLAGS = {
    "user": syscalls.CLONE_NEWUSER,
    "mount": syscalls.CLONE_NEWNS,
    "uts": syscalls.CLONE_NEWUTS,
    "ipc": syscalls.CLONE_NEWIPC,
    "network": syscalls.CLONE_NEWNET,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "pid": syscalls.CLONE_NEWPID,
    "time": syscalls.CLONE_NEWTIME,
}
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")
PROC_NAMES = {
    "user": "user",
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "network": "net",
    "cgroup": "cgroup",
    "pid": "pid",
    "time": "time",
}


class Plan:
    """``new``: CLONE flags to unshare (user apart); ``join``: (type, fd) in setns order,
    emptied once joined; ``joined``: those types, kept; ``host_joined``: the types whose
    path is the host's own namespace (pid 1's or ours), where a sysctl would change the host."""

    __slots__ = ("host_joined", "join", "joined", "new", "new_user")

    def __init__(self, linux: Linux) -> None:
        self.new_user = False
        self.new = 0
        opened: dict[str, int] = {}
        try:
            for i, ns in enumerate(linux.namespaces):
                if ns.path is None:
                    if ns.type == "user":
                        self.new_user = True
                    else:
                        self.new |= CLONE_FLAGS[ns.type]
                    continue
                opened[ns.type] = _open_ns(ns.path, f"linux.namespaces[{i}].path")
        except BaseException:
            for fd in opened.values():
                os.close(fd)
            raise
        self.join = [(kind, opened[kind]) for kind in JOIN_ORDER if kind in opened]
        self.joined = tuple(opened)
        self.host_joined = tuple(kind for kind, fd in opened.items() if _is_host_ns(kind, fd))

    def has(self, kind: str) -> bool:
        return bool(self.new & CLONE_FLAGS[kind]) or kind in self.joined or (kind == "user" and self.new_user)

    def needs_fork(self) -> bool:
        """A new or joined pid or time namespace only applies to children."""
        pid_time = syscalls.CLONE_NEWPID | syscalls.CLONE_NEWTIME
        return bool(self.new & pid_time) or any(k in ("pid", "time") for k, _ in self.join)

    def enter_joined(self) -> None:
        for kind, fd in self.join:
            try:
                syscalls.setns(fd, CLONE_FLAGS[kind])
            except OSError as exc:
                raise SpecError(f"linux.namespaces ({kind})", f"cannot join: {exc.strerror}") from None
            os.close(fd)
        self.join = []

    def close(self) -> None:
        for _, fd in self.join:
            os.close(fd)


def _open_ns(path: str, field: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SpecError(field, f"{path}: {exc.strerror}") from None


def _is_host_ns(kind: str, fd: int) -> bool:
    joined = os.fstat(fd)
    for pid in ("1", "self"):
        try:
            host = os.stat(f"/proc/{pid}/ns/{PROC_NAMES[kind]}")
        except OSError:
            continue
        if (host.st_dev, host.st_ino) == (joined.st_dev, joined.st_ino):
            return True
    return False


def write_id_maps(pid: int, linux: Linux) -> None:
    """The parent writes the maps: only a process outside the namespace may map host ids.

    A user other than root may map its own id alone (and its gid only once setgroups is
    denied, or dropping a group could lift a negative permission); any other map goes
    through the setuid newuidmap/newgidmap and the user's /etc/subuid and /etc/subgid
    ranges, as runc does."""
    if os.geteuid() == 0:
        write_maps(pid, linux.uid_mappings, linux.gid_mappings, "linux.uidMappings", "linux.gidMappings")
        return
    for kind, maps, own in (
        ("uid", linux.uid_mappings, os.geteuid()),
        ("gid", linux.gid_mappings, os.getegid()),
    ):
        field = f"linux.{kind}Mappings"
        if len(maps) == 1 and maps[0].host_id == own and maps[0].size == 1:
            if kind == "gid":
                _write_proc(pid, "setgroups", "deny", field)
            _write_proc(pid, f"{kind}_map", _map_text(maps), field)
        else:
            _map_with_tool(f"new{kind}map", pid, maps, field)


def _map_with_tool(tool: str, pid: int, maps: list[IDMapping], field: str) -> None:
    """``new{u,g}idmap PID ID HOST SIZE...``; its complaint, if any, ends our one line."""
    args = [tool, str(pid)] + [str(n) for m in maps for n in (m.container_id, m.host_id, m.size)]
    r, w = os.pipe()
    try:
        child = os.posix_spawnp(
            tool, args, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)]
        )
    except FileNotFoundError:
        os.close(r)
        raise SpecError(
            field, f"mapping more than your own id needs {tool} (Debian package uidmap)"
        ) from None
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode(errors="replace").strip().replace("\n", "; ")
    status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if status != 0:
        raise SpecError(field, f"{tool} failed ({said or f'exit status {status}'})")


def write_maps(
    pid: int, uids: list[IDMapping], gids: list[IDMapping], uid_field: str, gid_field: str
) -> None:
    _write_proc(pid, "uid_map", _map_text(uids), uid_field)
    _write_proc(pid, "gid_map", _map_text(gids), gid_field)


def _map_text(maps: list[IDMapping]) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)


def _write_proc(pid: int, name: str, text: str, field: str) -> None:
    try:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)
    except OSError as exc:
        raise SpecError(field, f"writing {name} failed: {exc.strerror}") from None


def mapped_userns(uids: list[IDMapping], gids: list[IDMapping], where: str) -> int:
    """An fd of a new user namespace with these maps, owned by nobody once it is returned: a
    child makes it and waits while we write its maps, then exits. An idmapped mount takes
    its mapping from such an fd."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(done_w)
        try:
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OcirtError(f"{where}: cannot make a user namespace for the idmapping")
        write_maps(pid, uids, gids, f"{where}.uidMappings", f"{where}.gidMappings")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def write_time_offsets(offsets: dict[str, object]) -> None:
    """Offsets must be written after unshare(CLONE_NEWTIME) and before the first child."""
    lines = []
    for clock in ("monotonic", "boottime"):
        value = offsets.get(clock)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise SpecError(f"linux.timeOffsets.{clock}", "must be an object")
        secs, nanos = value.get("secs", 0), value.get("nanosecs", 0)
        if not isinstance(secs, int) or not isinstance(nanos, int):
            raise SpecError(f"linux.timeOffsets.{clock}", "secs and nanosecs must be integers")
        lines.append(f"{clock} {secs} {nanos}\n")
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))
    except OSError as exc:
        raise SpecError("linux.timeOffsets", f"writing timens_offsets failed: {exc.strerror}") from None


def open_in_mount_ns(pid: int, paths: list[tuple[str, str]]) -> list[int]:
    """``O_PATH`` fds of ``(where, path)`` as this process (the host's root) resolves them in
    the mount namespace of ``pid``: its mounts, our credentials. Only an fd opened there can
    be bound inside it; the kernel refuses a source from another mount namespace."""
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    theirs = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    fds: list[int] = []
    try:
        syscalls.setns(theirs, syscalls.CLONE_NEWNS)
        try:
            for where, path in paths:
                try:
                    fds.append(os.open(path, os.O_PATH | os.O_CLOEXEC))
                except OSError as exc:
                    raise OcirtError(f"{where}: bind source {path}: {exc.strerror}") from None
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWNS)  # also resets the root and cwd
            os.fchdir(cwd)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        for fd in (own, cwd, theirs):
            os.close(fd)
    return fds
