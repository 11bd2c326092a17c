"""The entries of ``config.json``'s ``mounts``: option parsing and each kind of mount.

Options are read as runc reads them, so a bundle means the same thing to both: mount(2)
flags, propagation changes applied after the mount, recursive attributes applied with
mount_setattr(2), and anything else passed to the filesystem as its data string. Every
destination is resolved inside the rootfs (``ocirt.runtime.paths``) and mounted onto
``/proc/self/fd/N`` of that resolution, never onto a path string.
"""

from __future__ import annotations

import errno
import os
import stat

from ocirt.foundation.mountinfo import MountInfo, read_mountinfo
from ocirt.runtime import copyup, mountopts, paths, syscalls
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ocirt.specs.config import Mount


def containing_mount(path: str, infos: list[MountInfo]) -> MountInfo | None:
    """The mount ``path`` is on: the last-mounted one with the longest matching mountpoint."""
    best: MountInfo | None = None
    for info in infos:
        mp = info.mountpoint
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and (
            best is None or len(mp) >= len(best.mountpoint)
        ):
            best = info
    return best


class Rootfs:
    """What every mount entry needs: the rootfs fd and how the container is isolated."""

    __slots__ = ("bind_fds", "bundle", "cgroup_paths", "cgroupns", "idmap_fds", "root_fd", "userns")

    def __init__(
        self, root_fd: int, bundle: str, cgroup_paths: dict[str, str], cgroupns: bool, userns: bool
    ) -> None:
        self.root_fd = root_fd
        self.bundle = bundle
        self.cgroup_paths = cgroup_paths
        self.cgroupns = cgroupns
        self.userns = userns
        # mounts index -> O_PATH fd of its bind source, opened by the host's root (bind_sources)
        self.bind_fds: dict[int, int] = {}
        # mounts index -> detached idmapped tree the parent made (idmapped_trees)
        self.idmap_fds: dict[int, int] = {}


def clean(dest: str) -> str:
    return "/" + "/".join(paths.split(dest))


def strerror(exc: OSError) -> str:
    """The kernel's reason alone (the syscall layer's text also names the raw target)."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def fail(where: str, what: str, exc: OSError) -> OcirtError:
    return OcirtError(f"{where}: {what}: {strerror(exc)}")


def is_bind(m: Mount) -> bool:
    return m.type == "bind" or bool(mountopts.parse_options(m.options).flags & syscalls.MS_BIND)


def host_source(m: Mount, bundle: str) -> str:
    source = m.source or ""
    return source if source.startswith("/") else os.path.join(bundle, source)


def bind_sources(mounts: list[Mount], bundle: str) -> list[tuple[int, str]]:
    """(index, path) of every bind source. A container root mapped to an unprivileged host
    uid may not be able to reach them (a 0700 host directory on the way): as runc does, the
    host's root opens them in the container's mount namespace and init binds the fds."""
    return [
        (i, host_source(m, bundle))
        for i, m in enumerate(mounts)
        if m.source and is_bind(m) and not m.idmapped()
    ]


def mount_entry(rfs: Rootfs, index: int, m: Mount) -> None:
    where = f"mounts[{index}] ({m.destination})"
    opts = mountopts.parse_options(m.options)
    kind = m.type
    if index in rfs.idmap_fds:
        _attach(rfs, where, m.destination, rfs.idmap_fds[index], opts)
    elif is_bind(m):
        if not m.source:
            raise SpecError(f"mounts[{index}].source", "is required for a bind mount")
        source = host_source(m, rfs.bundle)
        bind(rfs, where, m.destination, source, opts, opts.flags | syscalls.MS_BIND, rfs.bind_fds.get(index))
    elif not kind:
        raise SpecError(f"mounts[{index}].type", "is required unless options has bind or rbind")
    elif kind == "cgroup":
        cgroup_v1(rfs, where, m.destination, opts)
    elif kind == "cgroup2":
        cgroup_v2(rfs, where, m.destination, m.source, opts)
    else:
        filesystem(rfs, where, m.destination, kind, m.source, opts)


def bind(
    rfs: Rootfs,
    where: str,
    dest: str,
    source: str,
    opts: mountopts.MountOptions,
    flags: int,
    source_fd: int | None = None,
) -> None:
    """A bind ignores every flag but MS_REC; the others need a remount of the new mount.
    ``source_fd`` (an ``O_PATH`` fd of ``source``) is bound instead of the path when given."""
    real = source if source_fd is None else paths.fd_path(source_fd)
    try:
        is_dir = stat.S_ISDIR(os.stat(real).st_mode)
    except OSError as exc:
        raise fail(where, f"bind source {source}", exc) from None
    fd = _destination(rfs, where, dest, is_dir)
    try:
        _check_proc(rfs, where, fd, "bind", source)
        syscalls.mount(real, paths.fd_path(fd), "bind", syscalls.MS_BIND | (flags & syscalls.MS_REC))
    except OSError as exc:
        raise fail(where, f"mount bind {source}", exc) from None
    finally:
        os.close(fd)
    remount = flags & mountopts.NOT_BIND_FLAGS & ~syscalls.MS_REC
    after_mount(rfs, where, dest, opts, remount | syscalls.MS_BIND if remount else 0)


def _attach(rfs: Rootfs, where: str, dest: str, tree: int, opts: mountopts.MountOptions) -> None:
    """Put a detached tree (``idmapped_trees``) at ``dest``; flags as for a bind."""
    fd = _destination(rfs, where, dest, stat.S_ISDIR(os.fstat(tree).st_mode))
    try:
        _check_proc(rfs, where, fd, "bind", None)
        empty = syscalls.MOVE_MOUNT_F_EMPTY_PATH | syscalls.MOVE_MOUNT_T_EMPTY_PATH
        syscalls.move_mount(tree, "", fd, "", empty)
    except OSError as exc:
        raise fail(where, "attach the idmapped mount", exc) from None
    finally:
        os.close(fd)
    remount = opts.flags & mountopts.NOT_BIND_FLAGS & ~syscalls.MS_REC
    after_mount(rfs, where, dest, opts, remount | syscalls.MS_BIND if remount else 0)


def filesystem(
    rfs: Rootfs, where: str, dest: str, kind: str, source: str | None, opts: mountopts.MountOptions
) -> None:
    """A new filesystem instance; tmpfs and ``/dev`` are mounted writable first, as runc does,
    so devices and copied files can be put in them, and made read-only afterwards."""
    if kind in ("proc", "sysfs"):
        _check_plain_dir(rfs, where, dest, kind)
    readonly_later = opts.flags & syscalls.MS_RDONLY and (kind == "tmpfs" or clean(dest) == "/dev")
    flags = opts.flags & ~syscalls.MS_RDONLY if readonly_later else opts.flags
    data = _tmpfs_mode(rfs, dest, opts.data) if kind == "tmpfs" else opts.data
    fd = _destination(rfs, where, dest, True)
    try:
        _check_proc(rfs, where, fd, kind, None)
        if opts.copyup and kind == "tmpfs":
            copyup.copy_up(rfs.root_fd, dest, fd, flags, data)
        else:
            syscalls.mount(source or kind, paths.fd_path(fd), kind, flags, data or None)
        error = None
    except OSError as exc:
        error = exc
    finally:
        os.close(fd)
    if error is not None:
        _fallback(rfs, where, dest, kind, opts, error)
        return
    remount = opts.flags | syscalls.MS_REMOUNT if readonly_later and clean(dest) != "/dev" else 0
    after_mount(rfs, where, dest, opts, remount)


def _tmpfs_mode(rfs: Rootfs, dest: str, data: str) -> str:
    """Without a ``mode`` option a tmpfs takes the mode of the directory it covers, as with
    runc and crun; one the runtime creates leaves tmpfs's default (1777)."""
    if any(o.startswith("mode=") for o in data.split(",")):
        return data
    try:
        fd = paths.open_in_root(rfs.root_fd, dest)
    except OSError:
        return data
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    return f"mode={mode:o}" + ("," + data if data else "")


# Without its own network (sysfs) or ipc (mqueue) namespace, a user namespace may not mount
# these; runc then binds the host's view, which is what the container would see anyway.
_HOST_FALLBACK = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}


def _fallback(
    rfs: Rootfs, where: str, dest: str, kind: str, opts: mountopts.MountOptions, exc: OSError
) -> None:
    source = _HOST_FALLBACK.get(kind, "")
    if not (rfs.userns and exc.errno in (errno.EPERM, errno.EBUSY) and os.path.isdir(source)):
        raise fail(where, f"mount {kind}" + (f" ({opts.data})" if opts.data else ""), exc)
    bind(rfs, where, dest, source, opts, opts.flags | syscalls.MS_BIND | syscalls.MS_REC)


def after_mount(rfs: Rootfs, where: str, dest: str, opts: mountopts.MountOptions, remount: int) -> None:
    """Remount, propagation and recursive attributes act on the new mount, so ``dest`` is
    resolved again: the fd from before the mount names the directory underneath it."""
    if not (remount or opts.propagation or opts.attr_set or opts.attr_clr):
        return
    fd = paths.open_in_root(rfs.root_fd, dest)
    try:
        if remount:
            _remount(where, fd, remount, opts.clear)
        for flag in opts.propagation:
            _call(where, "set propagation", syscalls.mount, None, paths.fd_path(fd), None, flag)
        if opts.attr_set or opts.attr_clr:
            flags = syscalls.AT_EMPTY_PATH | syscalls.AT_RECURSIVE
            _call(
                where,
                "mount_setattr",
                syscalls.mount_setattr,
                fd,
                "",
                flags,
                opts.attr_set,
                opts.attr_clr,
            )
    finally:
        os.close(fd)


def _remount(where: str, fd: int, flags: int, cleared: int) -> None:
    """In a user namespace the flags of a mount copied from the host are locked: a bind
    remount must repeat them, unless the config asked to clear one (then the error stands)."""
    target = paths.fd_path(fd)
    flags = (flags | syscalls.MS_REMOUNT) & ~syscalls.MS_REC
    try:
        syscalls.mount(None, target, None, flags)
        return
    except OSError as exc:
        if exc.errno != errno.EPERM or not flags & syscalls.MS_BIND:
            raise fail(where, "remount", exc) from None
        locked = mountopts.statvfs_flags(os.fstatvfs(fd).f_flag) & mountopts.LOCKED_FLAGS
        if locked & cleared:
            raise fail(where, "remount (the host locked flags the config clears)", exc) from None
    if flags & mountopts.ATIME_FLAGS:
        locked &= ~mountopts.ATIME_FLAGS
    _call(where, "remount", syscalls.mount, None, target, None, flags | locked)


def _call(where: str, what: str, func: Callable[..., None], *args: object) -> None:
    try:
        func(*args)
    except OSError as exc:
        raise fail(where, what, exc) from None


def _destination(rfs: Rootfs, where: str, dest: str, is_dir: bool) -> int:
    try:
        if is_dir:
            return paths.mkdir_all(rfs.root_fd, dest)
        return paths.make_file(rfs.root_fd, dest)
    except OSError as exc:
        what = f"create {'directory' if is_dir else 'file'} {dest} in the rootfs"
        raise fail(where, what, exc) from None


def _check_plain_dir(rfs: Rootfs, where: str, dest: str, kind: str) -> None:
    """runc refuses to mount proc or sysfs through a symlink: the container chose the path."""
    try:
        fd = paths.open_in_root(rfs.root_fd, dest, os.O_PATH | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not stat.S_ISDIR(mode):
        raise OcirtError(f"{where}: {kind} must be mounted on an ordinary directory")


# what runc lets a bundle mount over inside /proc: the files lxcfs emulates
PROC_OVERMOUNTS = {
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/pressure/cpu",
    "/proc/pressure/io",
    "/proc/pressure/memory",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
}


def _check_proc(rfs: Rootfs, where: str, fd: int, kind: str, bind_source: str | None) -> None:
    """Anything mounted over the container's /proc or inside it could hide what
    maskedPaths hides or redirect /proc/self (runc's checkProcMount)."""
    inside = in_root_path(rfs.root_fd, fd)
    if inside == "/proc":
        if kind == "proc" or (bind_source is not None and _is_procfs(bind_source)):
            return
        raise OcirtError(f"{where}: only a proc filesystem may be mounted on /proc")
    if inside.startswith("/proc/") and inside not in PROC_OVERMOUNTS:
        what = "inside /proc only the files lxcfs emulates may be covered"
        raise OcirtError(f"{where}: cannot mount on {inside}: {what}")


def in_root_path(root_fd: int, fd: int) -> str:
    """Where ``fd`` is, as the container will name it."""
    root = os.readlink(paths.fd_path(root_fd))
    path = os.readlink(paths.fd_path(fd))
    return "/" + path[len(root) :].lstrip("/") if path.startswith(root) else path


def _is_procfs(path: str) -> bool:
    info = containing_mount(os.path.realpath(path), read_mountinfo())
    return info is not None and info.fstype == "proc"


def cgroup_v1(rfs: Rootfs, where: str, dest: str, opts: mountopts.MountOptions) -> None:
    """runc's layout: a tmpfs holding one directory per host hierarchy, named like its host
    mount point. Without a cgroup namespace each is a bind of the container's own cgroup,
    with one, a fresh mount of the hierarchy (the kernel roots it at the namespace)."""
    infos = read_mountinfo()
    own = own_cgroups(rfs.cgroup_paths, infos)
    data = _tmpfs_mode(rfs, dest, "") or "mode=755"  # sysfs's 0555 under /sys, as runc's chmod
    fd = _destination(rfs, where, dest, True)
    try:
        syscalls.mount("tmpfs", paths.fd_path(fd), "tmpfs", mountopts.DEFAULT_FS_FLAGS, data)
    except OSError as exc:
        raise fail(where, "mount tmpfs for cgroups", exc) from None
    finally:
        os.close(fd)
    flags = opts.flags & ~(syscalls.MS_BIND | syscalls.MS_REC | syscalls.MS_REMOUNT)
    for info in v1_hierarchies(infos):
        name = os.path.basename(info.mountpoint)
        sub, source = f"{dest}/{name}", own.get(info.mountpoint)
        if rfs.cgroupns:
            _mount_hierarchy(rfs, where, sub, info, flags, source, opts)
        elif source is not None:
            bind(rfs, f"{where} {name}", sub, source, opts, flags | syscalls.MS_BIND | syscalls.MS_REC)
        else:
            continue
        _comount_links(rfs, where, dest, name)
    remount = mountopts.DEFAULT_FS_FLAGS | syscalls.MS_RDONLY if opts.flags & syscalls.MS_RDONLY else 0
    after_mount(rfs, where, dest, opts, remount)


def _mount_hierarchy(
    rfs: Rootfs,
    where: str,
    sub: str,
    info: MountInfo,
    flags: int,
    source: str | None,
    opts: mountopts.MountOptions,
) -> None:
    fd = _destination(rfs, where, sub, True)
    try:
        syscalls.mount("cgroup", paths.fd_path(fd), "cgroup", flags, controllers(info))
        return
    except OSError as exc:
        if exc.errno != errno.EPERM or source is None:
            raise fail(where, f"mount cgroup {controllers(info)}", exc) from None
    finally:
        os.close(fd)
    # a user namespace cannot mount a v1 hierarchy: show the container's cgroup instead
    bind(rfs, where, sub, source, opts, flags | syscalls.MS_BIND | syscalls.MS_REC)


def _comount_links(rfs: Rootfs, where: str, dest: str, name: str) -> None:
    """``cpu,cpuacct`` is also reachable as ``cpu`` and ``cpuacct``, as on the host."""
    if "," not in name:
        return
    fd = paths.mkdir_all(rfs.root_fd, dest)
    try:
        for link in name.split(","):
            try:
                os.symlink(name, link, dir_fd=fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise fail(where, f"symlink {dest}/{link}", exc) from None
    finally:
        os.close(fd)


_NOT_CONTROLLERS = {"rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode"}


def controllers(info: MountInfo) -> str:
    """The mount data that names a v1 hierarchy, from its super options (``rw,cpu,cpuacct``)."""
    names = [
        o
        for o in info.super_options.split(",")
        if o not in _NOT_CONTROLLERS and ("=" not in o or o.startswith("name=")) and "dynmods" not in o
    ]
    return ",".join(names)


def v1_hierarchies(infos: list[MountInfo]) -> list[MountInfo]:
    """Each v1 hierarchy once, at its first mount (the host's ``/sys/fs/cgroup/...``)."""
    seen: set[str] = set()
    out = []
    for info in infos:
        if info.fstype != "cgroup":
            continue
        key = controllers(info)
        if key not in seen:
            seen.add(key)
            out.append(info)
    return out


def own_cgroups(cgroup_paths: dict[str, str], infos: list[MountInfo]) -> dict[str, str]:
    """Host mount point of each hierarchy -> the container's directory in it.

    The keys of ``cgroup_paths`` are not relied upon: the mount a directory lives on says
    which hierarchy it belongs to."""
    out = {}
    for path in cgroup_paths.values():
        info = containing_mount(path, infos)
        if info is not None and info.fstype == "cgroup":
            out[info.mountpoint] = path
    return out


def cgroup_v2(rfs: Rootfs, where: str, dest: str, source: str | None, opts: mountopts.MountOptions) -> None:
    """With a cgroup namespace a new cgroup2 mount is rooted at the container's cgroup;
    without one it would show the host's whole tree, so the container's directory is bound."""
    own = None if rfs.cgroupns else own_v2(rfs.cgroup_paths)
    if own is not None:
        bind(rfs, where, dest, own, opts, opts.flags | syscalls.MS_BIND | syscalls.MS_REC)
    else:
        filesystem(rfs, where, dest, "cgroup2", source, opts)


def own_v2(cgroup_paths: dict[str, str]) -> str | None:
    if not cgroup_paths:
        return None
    infos = read_mountinfo()
    for path in cgroup_paths.values():
        info = containing_mount(path, infos)
        if info is not None and info.fstype == "cgroup2":
            return path
    return None
