"""``cp``: files between the host and a container, both ways, as ``docker cp`` does.

A container path is resolved by the kernel alone, never as a host path string: it is opened
with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from an fd of the directory that holds
it (the rootfs, or the volume or bind mounted there), so symlinks and ``..`` mean what they
mean inside the container. Resolving a string and opening it later let the container swap a
component for a symlink in between and lead ``cp`` onto the host (CVE-2018-15664). From that
fd on, trees are walked by fds, one component at a time with ``O_NOFOLLOW``: a symlink met
on the way is copied as a link, never followed, and every attribute is set through an fd.
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import TYPE_CHECKING, Any

from ocirt.manager.containers import etcfiles
from ocirt.manager.errors import ManagerError
from ocirt.manager.volumes import service as volumes

if TYPE_CHECKING:
    from ocirt.manager.containers.store import Container

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40
_RETRIES = 8  # openat2 fails with EAGAIN when a rename races its ".."; the kernel asks to retry


def split_ref(text: str) -> tuple[str | None, str]:
    """``NAME:/path`` → (NAME, /path); a host path → (None, path)."""
    head, sep, rest = text.partition(":")
    if sep and head and "/" not in head and not text.startswith(("/", ".")):
        return head, rest or "/"
    return None, text


def locate(root: str, c: Container, path: str) -> tuple[str, str]:
    """(host directory, path inside it) for container path ``path``: the volume or bind that
    holds it (``/etc/hosts`` and its kin included), else the rootfs. Only the mount table is
    read here; nothing is resolved."""
    clean = "/" + "/".join(p for p in path.split("/") if p and p != ".")
    best: dict[str, Any] | None = None
    for m in etcfiles.mounts(root, c.id) + c.plan.get("mounts", []):
        dest = m["destination"].rstrip("/") or "/"
        holds = m["type"] != "tmpfs" and (clean == dest or clean.startswith(dest + "/"))
        if holds and (best is None or len(dest) > len(best["destination"])):
            best = m
    if best is None:
        return c.plan["rootfs"], clean
    base = volumes.volume_dir(root, best["source"]) if best["type"] == "volume" else best["source"]
    return base, clean[len(best["destination"].rstrip("/")) :] or "/"


def copy_out(root: str, c: Container, path: str, dest: str) -> None:
    base, inner = locate(root, c, path)
    try:
        src = _open_in(base, inner, os.O_PATH)
    except FileNotFoundError:
        raise ManagerError(f"cp: no such file or directory in the container: {path}") from None
    except NotADirectoryError:
        raise ManagerError(f"cp: not a directory in the container: {path}") from None
    try:
        name = posixpath.basename(posixpath.normpath("/" + path))
        if path.endswith("/.") or not name:
            os.makedirs(dest, exist_ok=True)
            _into(dest, lambda dir_fd: _copy_entries(src, dir_fd, keep_owner=True))
        elif os.path.isdir(dest):
            _into(dest, lambda dir_fd: _copy(src, dir_fd, name, keep_owner=True))
        else:
            parent = os.path.dirname(os.path.abspath(dest))
            _into(parent, lambda dir_fd: _copy(src, dir_fd, os.path.basename(dest), keep_owner=True))
    except OSError as exc:
        raise ManagerError(f"cp: {exc.filename or dest}: {exc.strerror}") from None
    finally:
        os.close(src)


def copy_in(src: str, root: str, c: Container, path: str) -> None:
    """Copy host ``src`` to container path ``path``; what is created belongs to root, as
    with ``docker cp``."""
    try:
        source = os.open(src, _NOFOLLOW_PATH)
    except FileNotFoundError:
        raise ManagerError(f"cp: {src}: no such file or directory") from None
    try:
        dir_fd, name = _destination(*locate(root, c, path), path)
        try:
            if not src.endswith("/."):
                name = name or os.path.basename(os.path.normpath(os.path.abspath(src)))
                _copy(source, dir_fd, name, keep_owner=False)
            elif name is None:  # the contents, into the existing directory
                _copy_entries(source, dir_fd, keep_owner=False)
            else:
                sub = _ensure_dir(dir_fd, name, 0o755)
                try:
                    _copy_entries(source, sub, keep_owner=False)
                finally:
                    os.close(sub)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise ManagerError(f"cp: {exc.filename or path}: {exc.strerror}") from None
    finally:
        os.close(source)


def _open_in(base: str, inner: str, flags: int) -> int:
    """``inner`` opened under ``base`` as if ``base`` were ``/``. ``base`` is the manager's
    own path (snapshot, volume, bind source), which the container cannot replace."""
    from ocirt.runtime import syscalls

    if inner.strip("/") == "":
        return os.open(base, flags | os.O_CLOEXEC)
    root = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for _ in range(_RETRIES):
            try:
                return syscalls.openat2(
                    root, inner, flags, syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
                )
            except BlockingIOError:
                continue
        raise ManagerError(f"cp: {inner}: the container keeps renaming its parent directories")
    finally:
        os.close(root)


def _destination(base: str, inner: str, path: str) -> tuple[int, str | None]:
    """Where to write: (directory fd, None) for an existing directory, into which the source
    goes by its own name, else (its parent's fd, the name to create). A symlink as the last
    component is followed by hand, each step opened again inside the root."""
    if os.path.exists(base) and not os.path.isdir(base):  # a bind-mounted file is its source
        return os.open(os.path.dirname(base), _DIR_FLAGS), os.path.basename(base)
    for _ in range(_MAX_LINKS):
        try:
            return _open_in(base, inner, _DIR_FLAGS), None
        except (FileNotFoundError, NotADirectoryError):
            pass
        parent, name = posixpath.split(inner.rstrip("/"))
        if name in ("", ".", ".."):
            raise ManagerError(f"cp: no such directory in the container: {path}")
        try:
            dir_fd = _open_in(base, parent or "/", _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise ManagerError(f"cp: no such directory in the container: {path}") from None
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:  # missing, or not a symlink: the name to create
            return dir_fd, name
        os.close(dir_fd)
        inner = target if target.startswith("/") else posixpath.join(parent, target)
    raise ManagerError(f"cp: {path}: too many levels of symbolic links")


def _into(host_dir: str, copy: Any) -> None:
    """``copy(fd)`` into a directory of the host, named by the user."""
    dir_fd = os.open(host_dir, _DIR_FLAGS)
    try:
        copy(dir_fd)
    finally:
        os.close(dir_fd)


def _copy(src: int, dir_fd: int, name: str, keep_owner: bool) -> None:
    """What the ``O_PATH`` fd ``src`` holds, copied to ``name`` in ``dir_fd``."""
    st = os.fstat(src)
    if stat.S_ISDIR(st.st_mode):
        sub = _ensure_dir(dir_fd, name, 0o700)
        try:
            _copy_entries(src, sub, keep_owner)
            _set_attrs(sub, st, keep_owner)
        finally:
            os.close(sub)
    elif stat.S_ISREG(st.st_mode):
        _copy_file(src, dir_fd, name, st, keep_owner)
    else:
        _clear(dir_fd, name)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink("", dir_fd=src), name, dir_fd=dir_fd)
        else:  # a fifo, socket or device node, made again as cp -a does
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dir_fd)
        if keep_owner:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def _copy_entries(src: int, dir_fd: int, keep_owner: bool) -> None:
    """Each entry of directory ``src`` (an ``O_PATH`` fd), opened without following it."""
    listing = _reopen(src, _DIR_FLAGS)
    try:
        for entry in os.listdir(listing):
            child = os.open(entry, _NOFOLLOW_PATH, dir_fd=listing)
            try:
                _copy(child, dir_fd, entry, keep_owner)
            finally:
                os.close(child)
    finally:
        os.close(listing)


def _reopen(fd: int, flags: int) -> int:
    """The very file ``fd`` holds, opened again for reading (no path resolved again)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def _ensure_dir(dir_fd: int, name: str, mode: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:  # missing, a file, or a symlink (ELOOP): replace it
        _clear(dir_fd, name)
        os.mkdir(name, mode, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)


def _clear(dir_fd: int, name: str) -> None:
    """Whatever is in the way (a file or a planted symlink) goes; a directory is kept."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise ManagerError(f"cp: cannot overwrite directory {name!r} with a non-directory") from None


def _copy_file(src: int, dir_fd: int, name: str, st: os.stat_result, keep_owner: bool) -> None:
    _clear(dir_fd, name)
    out = os.open(
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
    )
    try:
        data = _reopen(src, os.O_RDONLY)
        try:
            while os.sendfile(out, data, None, 1 << 30):
                pass
        finally:
            os.close(data)
        _set_attrs(out, st, keep_owner)
    finally:
        os.close(out)


def _set_attrs(fd: int, st: os.stat_result, keep_owner: bool) -> None:
    """Owner (copying out, as cp -a), mode and times, through the fd: a name could have been
    swapped for a symlink by now."""
    if keep_owner:
        os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
