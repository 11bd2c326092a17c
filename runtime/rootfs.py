"""The container's filesystem view, built by its init in the new mount namespace.

The order is runc's, so bundles behave the same: cut propagation to the host, make the
rootfs a mount point, mount ``mounts`` in order, fill ``/dev``, pivot_root. What must follow
the hostname and sysctls (read-only and masked paths, a read-only root) is ``finalize_rootfs``.
"""

from __future__ import annotations

import errno
import os

from ocirt.foundation.mountinfo import read_mountinfo
from ocirt.runtime import devices, mountopts, mounts, syscalls
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ocirt.specs.config import Config


def setup_rootfs(
    config: Config,
    bundle: str,
    *,
    no_pivot: bool,
    cgroup_paths: dict[str, str],
    cgroupns: bool,
    userns: bool,
    before_pivot: Callable[[], None] | None = None,
    bind_fds: dict[int, int] | None = None,
    idmap_fds: dict[int, int] | None = None,
    mount_ns: bool = True,
) -> None:
    """From the container's mount namespace (cwd anywhere) to chdir("/") in the new root.

    ``cgroup_paths`` are the container's host cgroup directories (one per hierarchy);
    ``userns`` says mknod is not allowed, so device nodes are bound from the host;
    ``bind_fds`` are bind sources the host's root opened (``mounts.bind_sources``),
    ``idmap_fds`` the idmapped trees it made (``idmapped.idmapped_trees``).
    Without a mount namespace (``mount_ns`` false: the runtime's is inherited) the mounts
    are made in the runtime's own and the root is entered with chroot, as runc and crun
    do; the host's propagation is then left alone."""
    propagation = (config.linux.rootfs_propagation or "") if mount_ns else ""
    if no_pivot and propagation in ("private", "rprivate"):
        # runc's rule: with MS_MOVE the host's mounts stay reachable under the new root
        raise SpecError("linux.rootfsPropagation", f"{propagation} is not safe without pivot_root")
    rootfs = rootfs_path(config, bundle)
    if mount_ns:
        _prepare_tree(propagation, rootfs)
    else:
        _bind_rootfs(rootfs)
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    rfs = mounts.Rootfs(root_fd, bundle, cgroup_paths, cgroupns, userns)
    rfs.bind_fds = bind_fds or {}
    rfs.idmap_fds = idmap_fds or {}
    try:
        for i, m in enumerate(config.mounts):
            mounts.mount_entry(rfs, i, m)
        if devices.needs_dev_setup(config.mounts):
            devices.setup_dev(root_fd, config.linux.devices, userns)
        if before_pivot is not None:
            before_pivot()
        if not mount_ns:
            _chroot(root_fd, rootfs)
        elif no_pivot:
            _move_root(root_fd, rootfs)
        else:
            _pivot_root(root_fd, rootfs)
    finally:
        os.close(root_fd)
        for fd in (*rfs.bind_fds.values(), *rfs.idmap_fds.values()):
            os.close(fd)
        rfs.bind_fds.clear()
        rfs.idmap_fds.clear()
    if propagation:
        _mount("/", "set linux.rootfsPropagation " + propagation, mountopts.PROPAGATION[propagation])


def rootfs_path(config: Config, bundle: str) -> str:
    path = os.path.realpath(os.path.join(bundle, config.root.path))
    if not os.path.isdir(path):
        problem = "not a directory" if os.path.exists(path) else "no such directory"
        raise SpecError("root.path", f"{path}: {problem}")
    return path


def _prepare_tree(propagation: str, rootfs: str) -> None:
    """Nothing mounted from here on may reach the host. An unbindable tree could not give
    the rootfs its bind mount: it becomes unbindable only after pivot_root."""
    mode = propagation.removeprefix("r") if propagation else "slave"
    if mode == "unbindable":
        mode = "slave"
    flags = mountopts.PROPAGATION[mode] | syscalls.MS_REC
    _mount("/", f"make / recursively {mode}", flags)
    if flags & syscalls.MS_SHARED:
        _parent_private(rootfs)
    _bind_rootfs(rootfs)


def _bind_rootfs(rootfs: str) -> None:
    """A mount of its own, so a read-only root or the pivot acts on it alone."""
    try:
        syscalls.mount(rootfs, rootfs, "bind", syscalls.MS_BIND | syscalls.MS_REC)
    except OSError as exc:
        raise OcirtError(f"root.path: bind {rootfs} onto itself: {mounts.strerror(exc)}") from None


def _parent_private(rootfs: str) -> None:
    """A shared parent would carry the rootfs bind back to the host, and pivot_root refuses
    a new root whose parent is shared."""
    info = mounts.containing_mount(rootfs, read_mountinfo())
    if info is not None and any(o.startswith("shared:") for o in info.optional):
        _mount(info.mountpoint, f"make {info.mountpoint} private", syscalls.MS_PRIVATE)


def _mount(target: str, what: str, flags: int) -> None:
    try:
        syscalls.mount(None, target, None, flags)
    except OSError as exc:
        raise OcirtError(f"{what}: {mounts.strerror(exc)}") from None


def _pivot_root(root_fd: int, rootfs: str) -> None:
    """pivot_root(".", ".") stacks the old root on the new one, where it is detached; no
    directory for it is needed in the rootfs. It goes rslave first so the unmount of its
    tree does not propagate to the host."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(root_fd)
        syscalls.pivot_root(".", ".")
        os.fchdir(old)
        syscalls.mount(None, ".", None, syscalls.MS_SLAVE | syscalls.MS_REC)
        syscalls.umount2(".", syscalls.MNT_DETACH)
        os.chdir("/")
    except OSError as exc:
        hint = " (a rootfs on the initramfs needs --no-pivot)" if exc.errno == errno.EINVAL else ""
        raise OcirtError(f"pivot_root {rootfs}: {mounts.strerror(exc)}{hint}") from None
    finally:
        os.close(old)


def _chroot(root_fd: int, rootfs: str) -> None:
    """No mount namespace of the container's own: pivot_root would swap the host's root."""
    try:
        os.fchdir(root_fd)
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        raise OcirtError(f"chroot {rootfs} (no mount namespace): {mounts.strerror(exc)}") from None


def _move_root(root_fd: int, rootfs: str) -> None:
    """``--no-pivot``: move the rootfs over ``/`` and chroot into it."""
    try:
        os.fchdir(root_fd)
        syscalls.mount(".", "/", None, syscalls.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        raise OcirtError(f"move {rootfs} onto / (--no-pivot): {mounts.strerror(exc)}") from None


def finalize_rootfs(config: Config) -> None:
    """Runs after pivot_root, so plain paths are the container's own."""
    linux = config.linux
    for i, path in enumerate(linux.readonly_paths):
        _readonly_path(path, f"linux.readonlyPaths[{i}] ({path})")
    for i, path in enumerate(linux.masked_paths):
        _mask_path(path, f"linux.maskedPaths[{i}] ({path})")
    if _dev_readonly(config):
        _remount_readonly("/dev", "mounts (/dev): remount read-only")
    if config.root.readonly:
        _remount_readonly("/", "root.readonly: remount / read-only")


def _readonly_path(path: str, where: str) -> None:
    """Keep nosuid/nodev/noexec as they were: in a user namespace they are locked, and
    dropping them on a path like /proc would fail."""
    try:
        syscalls.mount(path, path, None, syscalls.MS_BIND | syscalls.MS_REC)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise mounts.fail(where, "bind onto itself", exc) from None
    try:
        keep = mountopts.statvfs_flags(os.statvfs(path).f_flag) & mountopts.DEFAULT_FS_FLAGS
        syscalls.mount(path, path, None, keep | syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
    except OSError as exc:
        raise mounts.fail(where, "remount read-only", exc) from None


def _mask_path(path: str, where: str) -> None:
    """A file gets /dev/null over it; a directory (ENOTDIR from the bind) an empty tmpfs."""
    try:
        syscalls.mount("/dev/null", path, None, syscalls.MS_BIND)
        return
    except FileNotFoundError:
        return
    except NotADirectoryError:
        pass
    except OSError as exc:
        raise mounts.fail(where, "bind /dev/null", exc) from None
    try:
        syscalls.mount("tmpfs", path, "tmpfs", syscalls.MS_RDONLY)
    except OSError as exc:
        raise mounts.fail(where, "mount read-only tmpfs", exc) from None


def _dev_readonly(config: Config) -> bool:
    """A read-only ``/dev`` was mounted writable so devices could be created in it."""
    readonly = False
    for m in config.mounts:
        if mounts.clean(m.destination) == "/dev":
            readonly = bool(mountopts.parse_options(m.options).flags & syscalls.MS_RDONLY)
    return readonly


def _remount_readonly(target: str, what: str) -> None:
    """A bind remount sets every per-mount flag at once: the current ones are repeated."""
    try:
        keep = mountopts.statvfs_flags(os.statvfs(target).f_flag)
        syscalls.mount(None, target, None, keep | syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
    except OSError as exc:
        raise OcirtError(f"{what}: {mounts.strerror(exc)}") from None
