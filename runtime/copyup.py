"""``tmpcopyup``: a new tmpfs that starts with what the image had at its destination, copied
between directory fds (never by path) with owners, modes, times, links and device nodes."""

from __future__ import annotations

import os
import stat

from ocirt.runtime import paths, syscalls


def copy_up(root_fd: int, dest: str, fd: int, flags: int, data: str) -> None:
    """``tmpcopyup``: the new tmpfs starts with what the image had at ``dest``, owned as the
    directory was; its mode is in ``data`` (the one asked for, else the directory's)."""
    src = paths.open_in_root(root_fd, dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syscalls.mount("tmpfs", paths.fd_path(fd), "tmpfs", flags, data or None)
        dst = paths.open_in_root(root_fd, dest, os.O_RDONLY | os.O_DIRECTORY)
        try:
            copy_tree(src, dst)
            st = os.fstat(src)
            os.fchown(dst, st.st_uid, st.st_gid)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def copy_tree(src: int, dst: int) -> None:
    """Copy a directory's entries between two directory fds, keeping owners, modes and times."""
    with os.scandir(src) as entries:
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            name = entry.name
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(name, 0o700, dir_fd=dst)
                sub_src = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src)
                sub_dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dst)
                try:
                    copy_tree(sub_src, sub_dst)
                finally:
                    os.close(sub_src)
                    os.close(sub_dst)
            elif stat.S_ISREG(st.st_mode):
                _copy_file(src, dst, name, st.st_size)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            else:
                os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
            _copy_meta(dst, name, st)


def _copy_file(src: int, dst: int, name: str, size: int) -> None:
    fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dst)
        try:
            offset = 0
            while offset < size:
                sent = os.sendfile(fout, fin, offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_meta(dst: int, name: str, st: os.stat_result) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
