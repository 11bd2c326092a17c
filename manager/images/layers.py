"""Applying a layer tarball to a snapshot directory, safely, in overlayfs's format.

Each layer is extracted on its own into an empty directory that becomes an overlayfs lower
layer (containerd's direct-to-upper apply): an OCI whiteout ``.wh.name`` becomes the
character device 0:0 overlayfs uses, and ``.wh..wh..opq`` the ``trusted.overlay.opaque``
xattr of its directory. Lower layers are consulted only to give a missing parent directory
its original owner and mode, and to copy up a hardlink's target.

Safety does not rest on tarfile's filters: every name is checked (no absolute path, no
``..``), and every path is walked one component at a time with ``O_NOFOLLOW`` from a
directory fd, so a symlink planted by an earlier entry is never followed (a parent that is a
symlink is refused); the final component is created with ``O_EXCL``/``*at`` calls that do not
follow links either. Xattrs in the ``trusted.overlay.`` namespace are dropped, so a layer
cannot forge overlayfs metadata.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, cast

from isal import isal_zlib
from ocirt.manager.errors import ManagerError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE = "trusted.overlay.opaque"
CHUNK = 1 << 20
INFLATE_ERROR = cast(type[Exception], isal_zlib.error)  # its stub does not say it is one
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Readable(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


class HashingReader:
    """Passes reads through and hashes them: the uncompressed stream's digest is the diff_id."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


class _Gunzip:
    """Streaming gzip (members concatenated too) with ISA-L's inflate, about three times
    zlib's speed: decompression is most of an unpack's CPU time."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self._z = isal_zlib.decompressobj(47)
        self._buf = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        want = n if n >= 0 else 1 << 62
        while len(self._buf) < want and not self._eof:
            src = self._z.unconsumed_tail or self.raw.read(CHUNK)
            if not src:
                self._eof = True
                self._buf += self._z.flush()
                break
            self._buf += self._z.decompress(src, max(want - len(self._buf), CHUNK))
            if self._z.eof:
                rest = self._z.unused_data
                self._z = isal_zlib.decompressobj(47)
                if rest:
                    self._buf += self._z.decompress(rest, CHUNK)
        out, self._buf = self._buf[:want], self._buf[want:]
        return out


@contextmanager
def decompressed(raw: Readable, compression: str) -> Iterator[Readable]:
    """The uncompressed tar stream of a layer: zstd through the ``zstd`` binary, gzip in-process."""
    if compression == "none":
        yield raw
    elif compression == "gzip":
        yield _Gunzip(raw)
    elif compression == "zstd":
        proc = subprocess.Popen(["zstd", "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None

        def feed() -> None:
            assert proc.stdin is not None
            try:
                while chunk := raw.read(CHUNK):
                    proc.stdin.write(chunk)
            except BrokenPipeError:
                pass
            finally:
                proc.stdin.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            yield proc.stdout
        finally:
            while proc.stdout.read(CHUNK):
                pass
            feeder.join()
            if proc.wait() != 0:
                raise ManagerError("zstd: layer does not decompress")
    else:
        raise ManagerError(f"unsupported compression {compression!r}")


def clean_name(name: str, where: str) -> str:
    """The entry's path relative to the layer root, or an error if it would leave it."""
    rel = name
    while rel.startswith("./"):
        rel = rel[2:]
    rel = rel.rstrip("/")
    if "\0" in rel:
        raise ManagerError(f"{where}: entry {name!r} has a NUL byte in its name")
    if rel.startswith("/"):
        raise ManagerError(f"{where}: entry {name!r} is an absolute path; refusing to extract it")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ManagerError(f"{where}: entry {name!r} escapes the layer root; refusing to extract it")
    return "/".join(parts)


class _Applier:
    def __init__(self, dest: str, lowers: list[str], where: str) -> None:
        self.where = where
        self.lowers = lowers
        self.root_fd = os.open(dest, _DIR_FLAGS)
        self._cache: tuple[str, int] | None = None
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def _drop_cache(self) -> None:
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None

    def _lower_stat(self, rel: str) -> os.stat_result | None:
        for lower in self.lowers:
            fd = os.open(lower, _DIR_FLAGS)
            try:
                st = fd_walk(fd, rel)
                if st is not None:
                    return st
            finally:
                os.close(fd)
        return None

    def parent(self, rel_dir: str) -> int:
        """An fd of directory ``rel_dir`` in the layer, made if missing; never via a symlink."""
        if self._cache is not None and self._cache[0] == rel_dir:
            return self._cache[1]
        fd = os.dup(self.root_fd)
        done: list[str] = []
        try:
            for part in rel_dir.split("/") if rel_dir else ():
                done.append(part)
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    self._mkdir_like_lower(fd, part, "/".join(done))
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ManagerError(
                            f"{self.where}: {'/'.join(done)!r} is not a directory (a symlink?); "
                            "refusing to extract through it"
                        ) from None
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        self._drop_cache()
        self._cache = (rel_dir, fd)
        return fd

    def _mkdir_like_lower(self, fd: int, part: str, rel: str) -> None:
        st = self._lower_stat(rel)
        if st is not None and stat.S_ISDIR(st.st_mode):
            os.mkdir(part, 0o700, dir_fd=fd)
            os.chown(part, st.st_uid, st.st_gid, dir_fd=fd, follow_symlinks=False)
            os.chmod(part, stat.S_IMODE(st.st_mode), dir_fd=fd)
        else:
            os.mkdir(part, 0o755, dir_fd=fd)

    def clear(self, pfd: int, rel: str, keep_dir: bool) -> None:
        """Make room for a new entry; a directory stays when the new entry is one too."""
        base = rel.rpartition("/")[2]
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            if self._cache is not None and (self._cache[0] + "/").startswith(rel + "/"):
                self._drop_cache()
            shutil.rmtree(base, dir_fd=pfd)
        else:
            os.unlink(base, dir_fd=pfd)

    def apply(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            try:
                self.entry(tar, member)
            except OSError as exc:
                raise ManagerError(f"{self.where}: entry {member.name!r}: {exc.strerror or exc}") from None
            except (ValueError, OverflowError) as exc:  # a NUL in a link target, an absurd mtime
                raise ManagerError(f"{self.where}: entry {member.name!r}: {exc}") from None
        for rel, member in reversed(self.dirs):
            rel_dir, _, base = rel.rpartition("/")
            self._meta_at(self.parent(rel_dir), base, member, only_time=True)

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = clean_name(member.name, self.where)
        if not rel:
            return
        rel_dir, _, base = rel.rpartition("/")
        if base.startswith(WHITEOUT):
            self.whiteout(rel_dir, base)
            return
        pfd = self.parent(rel_dir)
        self.clear(pfd, rel, member.isdir())
        if member.isdir():
            if not os.path.lexists(f"/proc/self/fd/{pfd}/{base}"):
                os.mkdir(base, 0o700, dir_fd=pfd)
            self.dirs.append((rel, member))
            self._meta_at(pfd, base, member)
        elif member.isreg():
            self.write_file(tar, member, pfd, base)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=pfd)
            self._meta_at(pfd, base, member)
        elif member.islnk():
            self.hardlink(member, rel_dir, base)
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
            self._meta_at(pfd, base, member)

    def whiteout(self, rel_dir: str, base: str) -> None:
        pfd = self.parent(rel_dir)
        if base == OPAQUE:
            os.setxattr(f"/proc/self/fd/{pfd}", OVERLAY_OPAQUE, b"y")
            return
        name = base[len(WHITEOUT) :]
        if name.startswith(WHITEOUT) or not name:
            return  # aufs bookkeeping (.wh..wh.plnk and friends): not content
        self.clear(pfd, f"{rel_dir}/{name}".lstrip("/"), keep_dir=False)
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)

    def write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, pfd: int, base: str) -> None:
        fd = os.open(
            base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd
        )
        try:
            src = tar.extractfile(member)
            if src is not None:
                while chunk := src.read(CHUNK):
                    os.write(fd, chunk)
            self._meta_fd(fd, member)
        finally:
            os.close(fd)

    def hardlink(self, member: tarfile.TarInfo, rel_dir: str, base: str) -> None:
        target = clean_name(member.linkname, self.where)
        t_dir, _, t_base = target.rpartition("/")
        tfd = os.dup(self.parent(t_dir))
        try:
            if not os.path.lexists(f"/proc/self/fd/{tfd}/{t_base}"):
                self._copy_up(target, tfd, t_base)
            pfd = self.parent(rel_dir)
            os.link(t_base, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _copy_up(self, target: str, tfd: int, t_base: str) -> None:
        """A hardlink to a file of a lower layer: the file comes up into this layer first."""
        for lower in self.lowers:
            lfd = os.open(lower, _DIR_FLAGS)
            try:
                st = fd_walk(lfd, target)
                if st is None:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    break
                src = open_file_beneath(lfd, target)
                dst = os.open(t_base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=tfd)
                try:
                    while chunk := os.read(src, CHUNK):
                        os.write(dst, chunk)
                    os.fchown(dst, st.st_uid, st.st_gid)
                    os.fchmod(dst, stat.S_IMODE(st.st_mode))
                    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(src)
                    os.close(dst)
                return
            finally:
                os.close(lfd)
        raise ManagerError(f"{self.where}: hardlink target {target!r} is not a regular file of this image")

    def _meta_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        for name, value in _xattrs(member):
            os.setxattr(fd, name, value)
        os.utime(fd, ns=(int(member.mtime * 1e9), int(member.mtime * 1e9)))

    def _meta_at(self, pfd: int, base: str, member: tarfile.TarInfo, only_time: bool = False) -> None:
        if not only_time:
            os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
            if not member.issym():
                os.chmod(base, member.mode & 0o7777, dir_fd=pfd)
                path = f"/proc/self/fd/{pfd}/{base}"
                for name, value in _xattrs(member):
                    os.setxattr(path, name, value, follow_symlinks=False)
        ns = int(member.mtime * 1e9)
        os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr.") :]
            if not name.startswith("trusted.overlay."):
                out.append((name, value.encode("utf-8", "surrogateescape")))
    return out


def fd_walk(dir_fd: int, rel: str) -> os.stat_result | None:
    """``lstat`` of ``rel`` under ``dir_fd`` without following any symlink on the way."""
    parts = [p for p in rel.split("/") if p]
    fd = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                return None
            os.close(fd)
            fd = nfd
        try:
            return os.stat(parts[-1] if parts else ".", dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None
    finally:
        os.close(fd)


def open_file_beneath(dir_fd: int, rel: str) -> int:
    parts = [p for p in rel.split("/") if p]
    fd = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def apply(stream: Readable, dest: str, lowers: list[str], where: str) -> None:
    """Extract the tar ``stream`` into the empty directory ``dest`` (``lowers`` top first).
    Raises ManagerError naming the entry for anything unsafe; the caller removes ``dest``."""
    applier = _Applier(dest, lowers, where)
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as tar:  # type: ignore[call-overload]
            applier.apply(tar)
    except tarfile.TarError as exc:
        raise ManagerError(f"{where}: not a valid tar stream: {exc}") from None
    except INFLATE_ERROR as exc:
        raise ManagerError(f"{where}: does not decompress: {exc}") from None
    finally:
        applier.close()
