"""The content store: blobs named by digest under ``<root>/images/blobs``, verified both ways.

Writes go through an ``Ingest``: a partial file under ``ingest/`` that survives a failed
download (so the next attempt resumes with an HTTP Range request), is hashed as it grows and
only becomes a blob, by an atomic rename, once size and digest match. An exclusive ``flock``
per digest makes two processes fetching the same blob take turns; the second finds it done.
Reads verify too: ``read`` checks small blobs whole and ``VerifyingReader`` checks a stream
when it reaches its end.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, Protocol

from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests

CHUNK = 1 << 20


def images_dir(root: str) -> str:
    return os.path.join(root, "images")


def blob_path(root: str, digest: str) -> str:
    algo, _, hexpart = digests.validate(digest).partition(":")
    return os.path.join(images_dir(root), "blobs", algo, hexpart)


def has(root: str, digest: str) -> bool:
    return os.path.exists(blob_path(root, digest))


def size(root: str, digest: str) -> int:
    return os.stat(blob_path(root, digest)).st_size


def read(root: str, digest: str) -> bytes:
    """A whole (small) blob, refused if its bytes no longer match its name."""
    try:
        with open(blob_path(root, digest), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ManagerError(f"blob {digest} is not in the content store") from None
    h = digests.hasher(digest)
    h.update(data)
    if f"{digest.partition(':')[0]}:{h.hexdigest()}" != digest:
        raise ManagerError(f"blob {digest} is corrupted in the content store")
    return data


class Source(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class VerifyingReader:
    """A blob that hashes what is read and fails at end-of-file on a mismatch: a stored
    file, or ``source`` (a download still being written, see ``transfer``)."""

    def __init__(self, root: str, digest: str, source: Source | None = None) -> None:
        self.digest = digest
        if source is None:
            try:
                source = open(blob_path(root, digest), "rb")  # noqa: SIM115
            except FileNotFoundError:
                raise ManagerError(f"blob {digest} is not in the content store") from None
        self._f = source
        self._h = digests.hasher(digest)
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._h.update(data)
        if not data or n < 0:
            self._check()
        return data

    def _check(self) -> None:
        if not self._done and f"{self.digest.partition(':')[0]}:{self._h.hexdigest()}" != self.digest:
            raise ManagerError(f"blob {self.digest} is corrupted in the content store")
        self._done = True

    def drain(self) -> None:
        """Read to the end so the digest is checked even if the consumer stopped early."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Ingest:
    """An in-progress blob: append with ``write``, then ``commit`` checks and publishes it."""

    def __init__(self, root: str, digest: str, expected_size: int | None) -> None:
        self.root, self.digest, self.expected_size = root, digest, expected_size
        hexpart = digests.hex_part(digest)
        self.partial = os.path.join(images_dir(root), "ingest", hexpart)
        self._h = digests.hasher(digest)
        self.on_reset: Callable[[], None] | None = None
        # unbuffered: a streaming unpack reads the partial file while it grows
        self._f: BinaryIO = open(self.partial, "ab+", buffering=0)  # noqa: SIM115
        self._f.seek(0)
        while chunk := self._f.read(CHUNK):
            self._h.update(chunk)
        self.offset = self._f.tell()
        if expected_size is not None and self.offset > expected_size:
            self.reset()

    def reset(self) -> None:
        """Start over (a server that ignored the Range request sends everything again)."""
        self._f.truncate(0)
        self._f.seek(0)
        self._h = digests.hasher(self.digest)
        self.offset = 0
        if self.on_reset is not None:
            self.on_reset()

    def write(self, data: bytes | memoryview) -> None:
        self._f.write(data)
        self._h.update(data)
        self.offset += len(data)
        if self.expected_size is not None and self.offset > self.expected_size:
            self.discard()
            raise ManagerError(f"blob {self.digest}: more data than the {self.expected_size} bytes expected")

    def commit(self) -> None:
        """Publish the blob once size and digest match. No fsync: a blob torn by a crash
        fails verification when read, and the content store reads nothing unverified."""
        got = f"{self.digest.partition(':')[0]}:{self._h.hexdigest()}"
        if self.expected_size is not None and self.offset != self.expected_size:
            self.discard()
            raise ManagerError(f"blob {self.digest}: got {self.offset} bytes, expected {self.expected_size}")
        if got != self.digest:
            self.discard()
            raise ManagerError(f"blob {self.digest}: digest mismatch (content is {got}), nothing stored")
        self._f.close()
        os.chmod(self.partial, 0o444)
        os.rename(self.partial, blob_path(self.root, self.digest))

    def discard(self) -> None:
        self._f.close()
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self._f.close()


def _ensure_dirs(root: str, digest: str) -> None:
    os.makedirs(os.path.dirname(blob_path(root, digest)), mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(images_dir(root), "ingest"), mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(images_dir(root), "locks"), mode=0o700, exist_ok=True)


@contextmanager
def locked(root: str, name: str, shared: bool = False) -> Iterator[None]:
    """A cross-process lock named ``name`` under the store (blocks until free); ``shared``
    holders exclude only exclusive ones (pulls run together, garbage collection alone)."""
    os.makedirs(os.path.join(images_dir(root), "locks"), mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(images_dir(root), "locks", name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def ingest(root: str, digest: str, expected_size: int | None = None) -> Iterator[Ingest | None]:
    """An ``Ingest`` for ``digest``, or None when the blob is already stored (perhaps by
    another process that held the lock meanwhile). The partial file stays on failure."""
    _ensure_dirs(root, digest)
    with locked(root, digests.hex_part(digest)):
        if has(root, digest):
            yield None
            return
        ing = Ingest(root, digest, expected_size)
        try:
            yield ing
        finally:
            ing.close()


def put(root: str, data: bytes, digest: str | None = None) -> str:
    """Store ``data``; with ``digest`` given, refuse content that does not match it."""
    digest = digest or digests.of_bytes(data)
    with ingest(root, digest, len(data)) as ing:
        if ing is not None:
            ing.reset()
            ing.write(data)
            ing.commit()
    return digest


def put_file(root: str, path: str, digest: str | None = None) -> str:
    """Store a file's content (``import``, ``load``), hashing it first when no digest is given."""
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        digest = f"sha256:{h.hexdigest()}"
    with ingest(root, digest, os.path.getsize(path)) as ing, open(path, "rb") as src:
        if ing is not None:
            ing.reset()
            while chunk := src.read(CHUNK):
                ing.write(chunk)
            ing.commit()
    return digest


def delete(root: str, digest: str) -> None:
    try:
        os.unlink(blob_path(root, digest))
    except FileNotFoundError:
        pass


def all_blobs(root: str) -> list[str]:
    out: list[str] = []
    top = os.path.join(images_dir(root), "blobs")
    for algo in sorted(os.listdir(top)) if os.path.isdir(top) else ():
        out.extend(f"{algo}:{name}" for name in sorted(os.listdir(os.path.join(top, algo))))
    return out
