"""Idmapped mounts (``idmap``, ``ridmap``, ``mounts[].uidMappings``): a detached copy of each
source, its owners mapped through a user namespace holding the mount's maps, made by the host's
root before init runs; init attaches it with move_mount."""

from __future__ import annotations

import errno
import os

from ocirt.foundation.mountinfo import read_mountinfo
from ocirt.runtime import mountopts, mounts, syscalls
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.specs.config import IDMapping, Linux, Mount


def idmapped_trees(entries: list[Mount], bundle: str, linux: Linux) -> dict[int, int]:
    """``mounts`` index -> a detached copy of the source with its owners mapped, for init to
    attach. Made here, by the host's root: an idmapping needs CAP_SYS_ADMIN over the
    filesystem, and only a mount not yet attached anywhere may take one."""
    from ocirt.runtime.namespaces import mapped_userns

    trees: dict[int, int] = {}
    users: dict[str, int] = {}
    try:
        for i, m in enumerate(entries):
            if not m.idmapped():
                continue
            uids, gids = _idmappings(i, m, linux)
            key = f"{_map_key(uids)}/{_map_key(gids)}"
            if key not in users:
                users[key] = mapped_userns(uids, gids, f"mounts[{i}]")
            trees[i] = _idmapped_tree(i, m, mounts.host_source(m, bundle), users[key])
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    finally:
        for fd in users.values():
            os.close(fd)
    return trees


def _map_key(maps: list[IDMapping]) -> str:
    return " ".join(f"{m.container_id}:{m.host_id}:{m.size}" for m in maps)


def _idmappings(index: int, m: Mount, linux: Linux) -> tuple[list[IDMapping], list[IDMapping]]:
    """runtime-spec 1.2: ``idmap`` without mappings of its own takes the container's."""
    if not mounts.is_bind(m):
        raise SpecError(f"mounts[{index}].options", "an idmapped mount must be a bind mount")
    uids = m.uid_mappings or linux.uid_mappings
    gids = m.gid_mappings or linux.gid_mappings
    if not (uids and gids):
        raise SpecError(
            f"mounts[{index}].uidMappings",
            "an idmapped mount needs uidMappings and gidMappings (its own or the container's)",
        )
    return uids, gids


def _idmapped_tree(index: int, m: Mount, source: str, userns_fd: int) -> int:
    where = f"mounts[{index}] ({m.destination})"
    opts = mountopts.parse_options(m.options)
    flags = (
        syscalls.OPEN_TREE_CLONE
        | syscalls.OPEN_TREE_CLOEXEC
        | (syscalls.AT_RECURSIVE if opts.flags & syscalls.MS_REC else 0)
    )
    try:
        tree = syscalls.open_tree(syscalls.AT_FDCWD, source, flags)
    except OSError as exc:
        raise mounts.fail(where, f"bind source {source}", exc) from None
    try:
        # a copy of a shared host mount is its peer: mounts under it would reach the host
        syscalls.mount_setattr(
            tree, "", syscalls.AT_EMPTY_PATH | syscalls.AT_RECURSIVE, 0, 0, syscalls.MS_SLAVE
        )
        recursive = syscalls.AT_RECURSIVE if opts.ridmap else 0
        syscalls.mount_setattr(
            tree, "", syscalls.AT_EMPTY_PATH | recursive, syscalls.MOUNT_ATTR_IDMAP, 0, 0, userns_fd
        )
    except OSError as exc:
        os.close(tree)
        hint = ""
        if exc.errno == errno.EINVAL:
            info = mounts.containing_mount(os.path.realpath(source), read_mountinfo())
            fstype = info.fstype if info is not None else "its"
            hint = f" (the {fstype} filesystem does not support idmapped mounts)"
        raise OcirtError(f"{where}: idmap {source}: {mounts.strerror(exc)}{hint}") from None
    return tree
