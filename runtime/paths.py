"""Resolve and create paths inside a container rootfs without ever leaving it.

A bundle's rootfs belongs to whoever built the image, so any of its components may be a
symlink to ``/etc`` or ``../../..``. Every lookup goes through openat2(2) with
``RESOLVE_IN_ROOT`` from an ``O_PATH`` fd of the rootfs: the kernel treats that fd as ``/``
for absolute symlinks and ``..``, so a hostile link lands inside the rootfs. Callers then
act on the returned fd (mount onto ``/proc/self/fd/N``, ``*at`` calls with it as dirfd), so
nothing is resolved a second time by a path string that could have changed meanwhile.
"""

from __future__ import annotations

import errno
import os

from ocirt.runtime import syscalls

RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
MAX_SYMLINKS = 40
_RETRIES = 16


def split(path: str) -> list[str]:
    """Components of ``path``; ``..`` is kept so the kernel resolves it in order with links."""
    return [p for p in path.split("/") if p and p != "."]


def fd_path(fd: int) -> str:
    """A path the kernel resolves to exactly what ``fd`` refers to."""
    return f"/proc/self/fd/{fd}"


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, mode: int = 0) -> int:
    """Open ``path`` as if ``root_fd`` were ``/``; the caller closes the new fd.

    openat2 fails with EAGAIN when a rename or mount raced with a ``..`` lookup; the lookup
    is simply retried, as the kernel expects."""
    rel = "/".join(split(path)) or "."
    for _ in range(_RETRIES):
        try:
            return syscalls.openat2(root_fd, rel, flags, RESOLVE, mode)
        except BlockingIOError:
            continue
    raise OSError(errno.EAGAIN, f"open {path}: {os.strerror(errno.EAGAIN)}", path)


def exists_in_root(root_fd: int, path: str) -> bool:
    try:
        os.close(open_in_root(root_fd, path))
    except FileNotFoundError:
        return False
    return True


def mkdir_all(root_fd: int, path: str, mode: int = 0o755) -> int:
    """An ``O_PATH`` fd of directory ``path`` in the rootfs, creating missing components.

    A dangling symlink met on the way is not an error: like a real lookup, its target
    (read inside the rootfs) is created instead, so ``/evil -> /etc/x`` makes ``rootfs/etc/x``.
    """
    parts = split(path)
    links = 0
    i = 0
    while i < len(parts):
        prefix = "/".join(parts[: i + 1])
        if exists_in_root(root_fd, prefix):
            i += 1
            continue
        parent = open_in_root(root_fd, "/".join(parts[:i]), os.O_PATH | os.O_DIRECTORY)
        try:
            os.mkdir(parts[i], mode, dir_fd=parent)
            i += 1
            continue
        except FileExistsError:
            target = os.readlink(parts[i], dir_fd=parent)
        finally:
            os.close(parent)
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"mkdir {path}: {os.strerror(errno.ELOOP)}", path)
        rest = parts[i + 1 :]
        parts = split(target) + rest if target.startswith("/") else parts[:i] + split(target) + rest
        i = 0
    return open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY)


def make_file(root_fd: int, path: str, mode: int = 0o644) -> int:
    """An ``O_PATH`` fd of ``path`` in the rootfs, made an empty file (and parents) if missing;
    an existing entry of any type is kept, so a mount onto it fails with the kernel's reason."""
    try:
        return open_in_root(root_fd, path)
    except FileNotFoundError:
        pass
    head, _, name = "/".join(split(path)).rpartition("/")
    if not name:
        raise OSError(errno.EISDIR, f"create {path}: {os.strerror(errno.EISDIR)}", path)
    os.close(mkdir_all(root_fd, head))
    os.close(open_in_root(root_fd, path, os.O_CREAT | os.O_WRONLY, mode))
    return open_in_root(root_fd, path)


def parent_in_root(root_fd: int, path: str) -> tuple[int, str]:
    """(``O_PATH`` fd of the parent directory, created if missing; last component) for
    ``*at`` calls, which do not follow a last component that is a symlink."""
    head, _, name = "/".join(split(path)).rpartition("/")
    if not name or name == "..":
        raise OSError(errno.EINVAL, f"{path}: not a name for a new file", path)
    return mkdir_all(root_fd, head), name
