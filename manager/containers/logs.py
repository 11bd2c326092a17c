"""``logs``: the shim's log files read back (``k8s-file`` or ``json-file``, rotated files
oldest first), partial records joined into lines, filtered by ``--since`` and ``--tail``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ocirt.manager.timeargs import timestamp_ns
from ocirt.shim.logs import DRIVERS as LOG_DRIVERS


@dataclass
class Line:
    time: str  # RFC 3339 with nanoseconds, as the shim wrote it
    stream: str
    text: bytes  # with its newline when the line was complete


def files(path: str, max_file: int) -> list[str]:
    rotated = [f"{path}.{n}" for n in range(max(max_file, 1) - 1, 0, -1)]
    return [p for p in [*rotated, path] if os.path.exists(p)]


def parse_record(raw: bytes, driver: str) -> tuple[str, str, bytes, bool] | None:
    """``(time, stream, text, complete)`` of one record line, None if it is not one."""
    parse = LOG_DRIVERS[driver].parse
    return parse(raw) if parse is not None else None


def lines(records: Iterator[tuple[str, str, bytes, bool]]) -> Iterator[Line]:
    """Partial records of a stream joined with what follows them."""
    pending: dict[str, Line] = {}
    for stamp, stream, text, full in records:
        head = pending.pop(stream, None)
        line = Line(head.time if head else stamp, stream, (head.text if head else b"") + text)
        if full:
            yield line
        else:
            pending[stream] = line
    yield from pending.values()


def read_records(
    paths: list[str], driver: str, consumed: list[int]
) -> Iterator[tuple[str, str, bytes, bool]]:
    """Records of ``paths``; ``consumed`` gets the bytes read of the last (live) file."""
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        whole = data[: data.rfind(b"\n") + 1]
        consumed[:] = [len(whole)]
        for raw in whole.splitlines():
            rec = parse_record(raw, driver)
            if rec is not None:
                yield rec


def since_filter(text: str | None) -> Callable[[str], bool]:
    """``--since``: docker's time argument (``timeargs``)."""
    if not text:
        return lambda _stamp: True
    bound = timestamp_ns(text, "--since") / 1e9
    return lambda stamp: _epoch(stamp) >= bound


def _epoch(stamp: str) -> float:
    import calendar

    head, _, frac = stamp.rstrip("Z").partition(".")
    base = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    return base + (float("0." + frac) if frac else 0.0)


def collect(
    path: str, driver: str, max_file: int, since: str | None, tail: int | None
) -> tuple[list[Line], int]:
    """The lines to show, and how far into the live file they go (where ``follow`` resumes)."""
    keep = since_filter(since)
    consumed = [0]
    out = [ln for ln in lines(read_records(files(path, max_file), driver, consumed)) if keep(ln.time)]
    if tail is not None and tail >= 0:
        out = out[len(out) - tail :] if tail else []
    return out, consumed[0] if os.path.exists(path) else 0


def follow(
    path: str, driver: str, offset: int, running: Callable[[], bool], emit: Callable[[Line], None]
) -> None:
    """New records as they are written, across rotations, until the container stops."""
    f = _open(path, offset)
    buf = b""
    while True:
        chunk = f.read() if f is not None else b""
        if chunk:
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for ln in lines(r for r in (parse_record(raw, driver) for raw in complete) if r is not None):
                emit(ln)
            continue
        if not running():
            return
        time.sleep(0.1)
        if f is None or _rotated(f, path):
            if f is not None:
                f.close()
            f = _open(path, 0)


def _open(path: str, offset: int) -> BinaryIO | None:
    try:
        f = open(path, "rb")  # noqa: SIM115 - follow's loop owns it
    except FileNotFoundError:
        return None
    f.seek(offset)
    return f


def _rotated(f: BinaryIO, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False
