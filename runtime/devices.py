"""Device nodes in the container's ``/dev``: runc's defaults, then ``linux.devices``.

Inside a user namespace mknod(2) of a device is refused, so the host's node is bind-mounted
onto an empty file instead (the cgroup device rules still decide what may be opened). The
same fallback serves a root without CAP_MKNOD.
"""

from __future__ import annotations

import os
import stat

from ocirt.runtime import mounts, paths, syscalls
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.specs.config import Device, Mount

# path, type, major, minor: every container gets these, mode 0666, owned by root
DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3),
    ("/dev/zero", "c", 1, 5),
    ("/dev/full", "c", 1, 7),
    ("/dev/random", "c", 1, 8),
    ("/dev/urandom", "c", 1, 9),
    ("/dev/tty", "c", 5, 0),
)
_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
_LINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)


class Node:
    """A device to create, from the defaults or a ``linux.devices`` entry."""

    __slots__ = ("gid", "major", "minor", "mode", "path", "type", "uid", "where")

    def __init__(
        self,
        where: str,
        path: str,
        type: str,
        major: int,
        minor: int,
        mode: int,
        uid: int,
        gid: int,
    ) -> None:
        self.where = where
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.mode = mode
        self.uid = uid
        self.gid = gid


def needs_dev_setup(mounts: list[Mount]) -> bool:
    """A ``/dev`` bound from the host already has its devices; runc then creates none."""
    for m in mounts:
        if "/".join(paths.split(m.destination)) == "dev" and (
            m.type == "bind" or "bind" in m.options or "rbind" in m.options
        ):
            return False
    return True


def nodes(devices: list[Device]) -> list[Node]:
    """Defaults first; a ``linux.devices`` entry with the same path replaces the default."""
    out = {
        path: Node(f"device {path}", path, kind, major, minor, 0o666, 0, 0)
        for path, kind, major, minor in DEFAULT_DEVICES
    }
    for i, d in enumerate(devices):
        mode = 0o666 if d.file_mode is None else d.file_mode
        where = f"linux.devices[{i}] ({d.path})"
        out[d.path] = Node(where, d.path, d.type, d.major, d.minor, mode, d.uid or 0, d.gid or 0)
    return list(out.values())


def setup_dev(root_fd: int, devices: list[Device], userns: bool) -> None:
    old = os.umask(0)
    try:
        for node in nodes(devices):
            create(root_fd, node, userns)
    finally:
        os.umask(old)
    _dev_links(root_fd)


def create(root_fd: int, node: Node, userns: bool) -> None:
    """mknod, or in a user namespace a bind of the host's node (a fifo needs no privilege)."""
    kind = _TYPE_BITS[node.type]
    if userns and kind != stat.S_IFIFO:
        bind_host_node(root_fd, node)
        return
    parent, name = _parent(root_fd, node)
    try:
        rdev = os.makedev(node.major, node.minor) if kind != stat.S_IFIFO else 0
        try:
            os.mknod(name, kind | (node.mode & 0o7777), rdev, dir_fd=parent)
        except FileExistsError:
            _check_existing(parent, name, node, kind, rdev)
            return
        except PermissionError:
            bind_host_node(root_fd, node)
            return
        except OSError as exc:
            raise _fail(node, f"mknod {node.type} {node.major}:{node.minor}", exc) from None
        try:
            os.chown(name, node.uid, node.gid, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise _fail(node, f"chown {node.uid}:{node.gid}", exc) from None
    finally:
        os.close(parent)


def _check_existing(parent: int, name: str, node: Node, kind: int, rdev: int) -> None:
    """The image's own node is kept when it is the device asked for; anything else at the
    path is an error (config-linux.md: "MUST generate an error")."""
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if stat.S_IFMT(st.st_mode) == kind and (kind == stat.S_IFIFO or st.st_rdev == rdev):
        return
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        found = f"device {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    else:
        found = _KINDS.get(stat.S_IFMT(st.st_mode), "file")
    wanted = "a fifo" if kind == stat.S_IFIFO else f"{node.type} {node.major}:{node.minor}"
    raise OcirtError(f"{node.where}: a {found} exists there, not {wanted}")


_KINDS = {
    stat.S_IFREG: "regular file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def bind_host_node(root_fd: int, node: Node) -> None:
    """The host's node of the same path, bound onto an empty file made inside the rootfs."""
    try:
        fd = paths.make_file(root_fd, node.path, 0o600)
    except OSError as exc:
        raise _fail(node, "create file in the rootfs", exc) from None
    try:
        syscalls.mount(node.path, paths.fd_path(fd), "bind", syscalls.MS_BIND)
    except OSError as exc:
        raise _fail(node, f"bind host {node.path} (mknod is not allowed here)", exc) from None
    finally:
        os.close(fd)


def _parent(root_fd: int, node: Node) -> tuple[int, str]:
    try:
        return paths.parent_in_root(root_fd, node.path)
    except OSError as exc:
        raise _fail(node, "create parent directory in the rootfs", exc) from None


def _fail(node: Node, what: str, exc: OSError) -> OcirtError:
    return OcirtError(f"{node.where}: {what}: {mounts.strerror(exc)}")


def _dev_links(root_fd: int) -> None:
    """``/dev/ptmx`` must be the devpts instance's own; the rest are the usual shortcuts."""
    links = [("pts/ptmx", "ptmx"), *_LINKS]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    dev = paths.mkdir_all(root_fd, "/dev")
    try:
        for target, name in links:
            try:
                _link(dev, target, name)
            except OSError as exc:
                what = f"symlink /dev/{name} -> {target}"
                raise OcirtError(f"{what}: {mounts.strerror(exc)}") from None
    finally:
        os.close(dev)


def _link(dev: int, target: str, name: str) -> None:
    """An existing entry is kept, except ``ptmx``: the image's node would not be the
    container's devpts instance."""
    try:
        os.symlink(target, name, dir_fd=dev)
    except FileExistsError:
        if name != "ptmx":
            return
        os.unlink(name, dir_fd=dev)
        os.symlink(target, name, dir_fd=dev)
