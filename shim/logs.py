"""The container log: ``k8s-file`` (CRI) and ``json-file`` (Docker) records, with rotation,
and ``DRIVERS``, the one registry of log drivers: the shim writes with a driver's
``record``, ``ocirtctl logs`` reads back with its ``parse``, ``--log-opt`` is checked against
its ``options``. A new driver is its two functions and one entry here.

Output is written as it is read: a chunk that ends mid-line becomes a partial record at
once (so nothing waits in the shim's memory and a crash loses nothing already read), and
the rest of the line follows in later records. Rotation happens only between records, so
no record is split, lost or written twice.
"""

from __future__ import annotations

import _json
import os
import time

from ocirt.foundation.timefmt import rfc3339nano
from ocirt.shim.lognet import SYSLOG_OPTIONS, LineSink, open_syslog
from ocirt.shim.logwire import (
    FLUENTD_OPTIONS,
    GELF_OPTIONS,
    JOURNALD_OPTIONS,
    open_fluentd,
    open_gelf,
    open_journald,
)

TYPE_CHECKING = False  # the shim does not import typing
if TYPE_CHECKING:
    from collections.abc import Callable

    Record = Callable[[str, bytes, str], bytes]
    # (time, stream, text with its newline if complete, complete); None: not a record
    Parsed = tuple[str, str, bytes, bool] | None
    Sink = Callable[[dict[str, str], dict[str, str]], LineSink]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


def split_records(data: bytes) -> list[tuple[bytes, bool]]:
    """``(text without newline, complete)`` for each line of ``data``."""
    lines = data.split(b"\n")
    out = [(line, True) for line in lines[:-1]]
    if lines[-1]:
        out.append((lines[-1], False))
    return out


def k8s_records(stream: str, data: bytes, now: str) -> bytes:
    head = f"{now} {stream} ".encode()
    return b"".join(head + (b"F " if full else b"P ") + text + b"\n" for text, full in split_records(data))


def json_records(stream: str, data: bytes, now: str) -> bytes:
    tail = f',"stream":"{stream}","time":"{now}"}}\n'
    out = []
    for text, full in split_records(data):
        line = text.decode("utf-8", "replace") + ("\n" if full else "")
        out.append('{"log":' + _json.encode_basestring(line) + tail)
    return "".join(out).encode()


def parse_k8s(raw: bytes) -> Parsed:
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else b""
    full = parts[2] == b"F"
    return parts[0].decode(), parts[1].decode(), text + (b"\n" if full else b""), full


def parse_json(raw: bytes) -> Parsed:
    """Only ``ocirtctl logs`` reads records, so json is imported here, never by the shim."""
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    text = doc.get("log", "").encode()
    return doc.get("time", ""), doc.get("stream", "stdout"), text, text.endswith(b"\n")


FILE_OPTIONS = ("max-size", "max-file")


class LogDriver:
    """``record`` and ``parse`` are None for a driver that keeps no file (``none``: output
    still reaches attached clients); ``sink`` opens the sender of a driver that sends each
    line away (``syslog``, ...), from the ``--log-opt`` options and the container's
    ``--log-info`` (its id, name, image, ...)."""

    __slots__ = ("name", "options", "parse", "record", "sink")

    def __init__(
        self,
        name: str,
        record: Record | None,
        parse: Callable[[bytes], Parsed] | None,
        options: tuple[str, ...],
        sink: Sink | None = None,
    ) -> None:
        self.name = name
        self.record = record
        self.parse = parse
        self.options = options
        self.sink = sink


# ``none`` takes the file options and ignores them, as ocirtctl always has
DRIVERS = {
    d.name: d
    for d in (
        LogDriver("json-file", json_records, parse_json, FILE_OPTIONS),
        LogDriver("k8s-file", k8s_records, parse_k8s, FILE_OPTIONS),
        LogDriver("none", None, None, FILE_OPTIONS),
        LogDriver("syslog", None, None, SYSLOG_OPTIONS, open_syslog),
        LogDriver("gelf", None, None, GELF_OPTIONS, open_gelf),
        LogDriver("fluentd", None, None, FLUENTD_OPTIONS, open_fluentd),
        LogDriver("journald", None, None, JOURNALD_OPTIONS, open_journald),
    )
}
DEFAULT_DRIVER = "k8s-file"  # conmon's and podman's default


class Log:
    """Appends records to ``path``; past ``max_size`` bytes the file moves to ``path.1``."""

    def __init__(
        self,
        path: str | None,
        driver: str,
        max_size: int,
        max_file: int,
        options: dict[str, str] | None = None,
        info: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.driver = DRIVERS[driver]
        self.options = options or {}
        self.info = info or {}
        self.sink: LineSink | None = None
        self.format = self.driver.record
        self.max_size = max_size
        self.max_file = max_file
        self.fd = -1
        self.size = 0
        if self.format is not None and path is not None:
            self._open()

    def connect(self) -> None:
        """Reach a sending driver's receiver; an ``OSError`` or ``LogOptionError`` says why not."""
        if self.driver.sink is not None:
            self.sink = self.driver.sink(self.options, self.info)

    def _open(self) -> None:
        assert self.path is not None
        self.fd = os.open(self.path, _FLAGS, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        if self.sink is not None:
            self.sink.write(stream, data)
        if self.fd < 0 or self.format is None:
            return
        now = rfc3339nano(time.time_ns())
        if self.max_size <= 0:
            self._append(self.format(stream, data, now))
            return
        for text, full in split_records(data):
            record = self.format(stream, text + b"\n" if full else text, now)
            if self.size and self.size + len(record) > self.max_size:
                self._rotate()
            self._append(record)

    def _append(self, record: bytes) -> None:
        view = memoryview(record)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(record)

    def _rotate(self) -> None:
        """``path.N-1`` is dropped, each ``path.k`` becomes ``path.k+1``, ``path`` becomes
        ``path.1``; with ``max_file`` 1 the file starts again empty."""
        assert self.path is not None
        os.close(self.fd)
        if self.max_file > 1:
            for k in range(self.max_file - 2, 0, -1):
                try:
                    os.replace(f"{self.path}.{k}", f"{self.path}.{k + 1}")
                except FileNotFoundError:
                    pass
            os.replace(self.path, f"{self.path}.1")
        else:
            os.truncate(self.path, 0)
        self._open()

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
