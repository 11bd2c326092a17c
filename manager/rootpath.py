"""Paths inside a container's root filesystem, resolved as the container would see them.

A symlink in the rootfs means what it means inside the container: ``/x -> /etc`` must land
in the rootfs's ``etc``, never the host's. Every component is resolved by hand against the
root (``..`` stops at it), as ``chroot`` would, so no host path outside the root is reached.
"""

from __future__ import annotations

import os

from ocirt.manager.errors import ManagerError

_MAX_LINKS = 40


def resolve(root: str, path: str, follow_last: bool = True) -> str:
    """The host path of container path ``path`` under ``root``; it may not exist yet."""
    root = os.path.realpath(root)
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        host = os.path.join(root, *done, part)
        if os.path.islink(host) and (parts or follow_last):
            links += 1
            if links > _MAX_LINKS:
                raise ManagerError(f"{path}: too many levels of symbolic links")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        done.append(part)
    return os.path.join(root, *done)
