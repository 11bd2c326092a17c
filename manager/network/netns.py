"""Persistent network namespaces: an nsfs bind mount on a file, like ``ip netns add``.

The namespace is made by a thread that unshares only itself (``CLONE_NEWNET`` is per task),
so no fork of a possibly multi-threaded process is needed; the mount keeps it alive after the
thread ends, and the runtime joins it through ``linux.namespaces[].path``.
"""

from __future__ import annotations

import os
import threading

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.links import index, rtnl
from ocirt.runtime import syscalls


def is_mounted(path: str) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except FileNotFoundError:
        return False


def create(path: str) -> None:
    """A new netns at ``path`` with ``lo`` up; an existing one is kept."""
    if is_mounted(path):
        return
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    errors: list[BaseException] = []
    thread = threading.Thread(target=_unshare_and_mount, args=(path, errors))
    thread.start()
    thread.join()
    if errors:
        os.unlink(path)
        raise ManagerError(f"cannot create network namespace {path}: {errors[0]}")
    _loopback_up(path)


def _unshare_and_mount(path: str, errors: list[BaseException]) -> None:
    try:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        syscalls.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, syscalls.MS_BIND)
    except OSError as exc:
        errors.append(exc)


def _loopback_up(path: str) -> None:
    with rtnl(path) as ipr:
        lo = index(ipr, "lo")
        if lo is not None:
            ipr.link_up(lo)


def remove(path: str) -> None:
    """Unmount and unlink; the namespace dies with its last user. Idempotent."""
    if is_mounted(path):
        syscalls.umount2(path, syscalls.MNT_DETACH)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def listed(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
