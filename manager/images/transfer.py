"""A download that can be read while it is still being written: unpacking a layer starts as
soon as its first bytes land, instead of after the whole blob (the biggest single win for a
one-layer image).

The downloading thread reports each write and each restart; ``GrowingReader`` reads the
partial file and, at its current end, waits for more. The reader's bytes are hashed against
the layer digest (``store.VerifyingReader``) like any read from the store, so what it
extracted is exactly what was verified. If the download restarted from zero (a server that
ignored the Range request), what was read may mix two attempts: the reader raises
``Restarted`` and the caller unpacks again from the stored blob.
"""

from __future__ import annotations

import os
import threading


class Restarted(Exception):
    """The blob was rewritten from the start while being read."""


class Transfer:
    """Shared state of one blob's download, between the fetching and the unpacking thread."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.path: str | None = None
        self.finished = False
        self.resets = 0

    def started(self, path: str) -> None:
        with self.cond:
            self.path = path
            self.cond.notify_all()

    def wrote(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def reset(self) -> None:
        with self.cond:
            self.resets += 1
            self.cond.notify_all()

    def finish(self) -> None:
        """Called when the download ended, well or not (the blob is then in the store or not)."""
        with self.cond:
            self.finished = True
            self.cond.notify_all()

    def wait_started(self) -> str | None:
        """The partial file's path, or None if the blob needed no download."""
        with self.cond:
            while self.path is None and not self.finished:
                self.cond.wait()
            return self.path


class GrowingReader:
    """Reads a partial download to its end, waiting for the writer at the current end."""

    def __init__(self, transfer: Transfer, path: str) -> None:
        self.transfer = transfer
        self.resets = transfer.resets
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self, n: int = -1) -> bytes:
        size = n if n >= 0 else 1 << 20
        while True:
            data = os.read(self._fd, size)
            if data:
                return data
            with self.transfer.cond:
                if self.transfer.resets != self.resets:
                    raise Restarted
                if self.transfer.finished:
                    return os.read(self._fd, size)
                self.transfer.cond.wait(0.5)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def reader(transfer: Transfer) -> GrowingReader | None:
    """A reader of the download in progress; None when there is none to follow (no download
    was needed, or it already finished and its partial file became a blob)."""
    path = transfer.wait_started()
    if path is None:
        return None
    try:
        return GrowingReader(transfer, path)
    except FileNotFoundError:
        return None
