"""``cp``: files between the host and a container, both ways, as ``docker cp`` does.

Container paths are resolved as the container sees them (``rootpath.resolve``: symlinks
stay inside its root, and inside the volume or bind that holds the path). Copying in,
every entry is created relative to an open directory fd with ``O_NOFOLLOW``, so a symlink
the container planted in the destination cannot redirect a write onto the host; copying
out, ``cp -a`` copies links as links and never follows them.
"""

from __future__ import annotations

import os
import stat
import subprocess
from typing import Any

from ocirt.manager.errors import ManagerError
from ocirt.manager.rootpath import resolve
from ocirt.manager.volumes import service as volumes

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def split_ref(text: str) -> tuple[str | None, str]:
    """``NAME:/path`` → (NAME, /path); a host path → (None, path)."""
    head, sep, rest = text.partition(":")
    if sep and head and "/" not in head and not text.startswith(("/", ".")):
        return head, rest or "/"
    return None, text


def host_path(root: str, rootfs: str, mounts: list[dict[str, Any]], path: str) -> str:
    """Where container path ``path`` is on the host: in the mount that holds it, else rootfs."""
    clean = "/" + "/".join(p for p in path.split("/") if p and p != ".")
    best: dict[str, Any] | None = None
    for m in mounts:
        dest = m["destination"].rstrip("/") or "/"
        holds = m["type"] != "tmpfs" and (clean == dest or clean.startswith(dest + "/"))
        if holds and (best is None or len(dest) > len(best["destination"])):
            best = m
    if best is None:
        return resolve(rootfs, clean)
    base = volumes.volume_dir(root, best["source"]) if best["type"] == "volume" else best["source"]
    return resolve(base, clean[len(best["destination"].rstrip("/")) :])


def copy_out(src: str, dest: str, contents_only: bool) -> None:
    if not os.path.lexists(src):
        raise ManagerError(f"cp: no such file or directory in the container: {src}")
    target = dest
    if os.path.isdir(dest) and not contents_only:
        target = os.path.join(dest, os.path.basename(src.rstrip("/")))
    source = os.path.join(src, ".") if contents_only else src
    if contents_only:
        os.makedirs(dest, exist_ok=True)
        target = dest
    done = subprocess.run(
        ["cp", "-a", "--no-dereference", "--", source, target], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise ManagerError(f"cp: {done.stderr.strip()}")


def copy_in(src: str, dest_host: str, dest_root: str, contents_only: bool) -> None:
    """Copy host ``src`` to ``dest_host`` (resolved inside ``dest_root``)."""
    if not os.path.lexists(src):
        raise ManagerError(f"cp: {src}: no such file or directory")
    parent, name = os.path.split(dest_host.rstrip("/"))
    if os.path.isdir(dest_host) and not os.path.islink(dest_host):
        parent, name = dest_host, os.path.basename(os.path.abspath(src))
    if not os.path.realpath(parent).startswith(os.path.realpath(dest_root)):
        raise ManagerError(f"cp: destination {dest_host} is outside the container")
    dir_fd = os.open(parent, _DIR_FLAGS)
    try:
        if contents_only and os.path.isdir(src):
            sub = _ensure_dir(dir_fd, name, 0o755) if name else os.dup(dir_fd)
            try:
                for entry in os.listdir(src):
                    _copy(os.path.join(src, entry), sub, entry)
            finally:
                os.close(sub)
        else:
            _copy(src, dir_fd, name)
    finally:
        os.close(dir_fd)


def _copy(src: str, dir_fd: int, name: str) -> None:
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        sub = _ensure_dir(dir_fd, name, stat.S_IMODE(st.st_mode))
        try:
            for entry in os.listdir(src):
                _copy(os.path.join(src, entry), sub, entry)
        finally:
            os.close(sub)
    elif stat.S_ISLNK(st.st_mode):
        _clear(dir_fd, name)
        os.symlink(os.readlink(src), name, dir_fd=dir_fd)
    elif stat.S_ISREG(st.st_mode):
        _copy_file(src, dir_fd, name, stat.S_IMODE(st.st_mode))
    else:
        raise ManagerError(f"cp: {src}: only files, directories and symlinks can be copied")


def _ensure_dir(dir_fd: int, name: str, mode: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:  # missing, a file, or a symlink (ELOOP): replace it
        _clear(dir_fd, name)
        os.mkdir(name, mode, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _clear(dir_fd: int, name: str) -> None:
    """Whatever is in the way (a file or a planted symlink) goes; a directory is kept."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise ManagerError(f"cp: cannot overwrite directory {name!r} with a non-directory")
    os.unlink(name, dir_fd=dir_fd)


def _copy_file(src: str, dir_fd: int, name: str, mode: int) -> None:
    _clear(dir_fd, name)
    out = os.open(
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd
    )
    try:
        with open(src, "rb") as f:
            while chunk := f.read(1 << 20):
                os.write(out, chunk)
        os.fchmod(out, mode)
    finally:
        os.close(out)
