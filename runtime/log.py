"""The runtime's own log (``--log``, ``--log-format``), read by containerd and podman.

They parse one JSON object per line with ``level``, ``msg`` and ``time``: on a failed
``create`` containerd shows the last ``error`` line to its user, so errors go both to
stderr and to the log. ``logging`` is not used: importing it costs more than a ``run``
can afford.
"""

from __future__ import annotations

import os
import sys

from ocirt.foundation import fastjson, timefmt
from ocirt.runtime.errors import clip


class Log:
    __slots__ = ("debug_enabled", "fd", "json")

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644) if path else -1
        self.json = fmt == "json"
        self.debug_enabled = debug

    def _write(self, level: str, msg: str) -> None:
        msg = printable(msg)
        stamp = timefmt.rfc3339nano_now()
        if self.json:
            line = fastjson.dumps({"level": level, "msg": msg, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg={fastjson.dumps(msg)}'
        if self.fd >= 0:
            os.write(self.fd, (line + "\n").encode())
        else:
            sys.stderr.write(line + "\n")

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._write("debug", msg)

    def warning(self, msg: str) -> None:
        self._write("warning", msg)

    def error(self, msg: str) -> None:
        """Errors always reach stderr as ``ocirt: msg``; the log copy is for managers."""
        if self.fd >= 0:
            self._write("error", msg)
        sys.stderr.write(f"ocirt: {printable(msg)}\n")
        sys.stderr.flush()


def printable(msg: str) -> str:
    """Messages echo their input: a newline in a mount option must not print a second
    ``ocirt:`` line of the config author's choosing, nor an escape sequence reach a terminal.
    Every character Python would not print is written as its escape, as ``repr`` does."""
    msg = clip(msg)
    if msg.isprintable():
        return msg
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in msg)
