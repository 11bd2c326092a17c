"""Non-blocking byte streams of the event loop: a client connection and a stdin to feed.

Both buffer what the other side has not taken yet and ask the loop for EPOLLOUT only while
something waits, so a slow reader never blocks the shim.
"""

from __future__ import annotations

import os
import select
import termios

from ocirt.foundation import fastjson
from ocirt.shim import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.shim.execs import Exec
    from ocirt.shim.server import Shim

IN = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
OUT = select.EPOLLOUT
CHUNK = 65536
MAX_PENDING = 4 << 20  # a client that falls this far behind is dropped


class Writer:
    """A stdin to feed: buffered, written when the reader takes it, closed once drained.
    Closing a pty's stdin sends EOF (Ctrl-D) instead: the master stays open for output."""

    def __init__(self, shim: Shim, fd: int, tty: bool) -> None:
        self.shim = shim
        self.fd = fd
        self.tty = tty
        self.buf = bytearray()
        self.closing = False
        self.waiting = False
        os.set_blocking(fd, False)

    def write(self, data: bytes) -> None:
        if self.fd >= 0 and not self.closing:
            self.buf += data
            self.flush()

    def close(self) -> None:
        if self.tty and self.fd >= 0 and not self.closing:
            self.buf += b"\x04"
        self.closing = True
        self.flush()

    def flush(self, _events: int = 0) -> None:
        if self.fd < 0:
            return
        try:
            while self.buf:
                del self.buf[: os.write(self.fd, self.buf)]
        except BlockingIOError:
            pass
        except OSError:  # the reader is gone: what it did not read is lost with it
            self.buf.clear()
            self.closing = True
        if self.buf and not self.waiting:
            self.shim.watch(self.fd, OUT, self.flush)
            self.waiting = True
        elif not self.buf and self.waiting:
            self.shim.unwatch(self.fd)
            self.waiting = False
        if self.closing and not self.buf:
            os.close(self.fd)
            self.fd = -1


class Conn:
    """One client connection: a request line, then a reply, or frames for attach/exec."""

    def __init__(self, shim: Shim, fd: int) -> None:
        self.shim = shim
        self.fd = fd
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.mode = "request"
        self.exec: Exec | None = None
        self.closing = False
        self.want_out = False
        os.set_blocking(fd, False)
        shim.watch(fd, IN, self.on_event)

    def on_event(self, events: int) -> None:
        if events & OUT:
            self.flush()
        if self.fd >= 0 and events & IN:
            self.read()

    def read(self) -> None:
        data = read_chunk(self.fd)
        if data is None:
            return
        if not data:
            self.close()
            return
        self.inbuf += data
        if self.mode == "request" and b"\n" in self.inbuf:
            line, _, rest = bytes(self.inbuf).partition(b"\n")
            self.inbuf = bytearray(rest)
            try:
                req = fastjson.loads(line.decode())
            except (ValueError, UnicodeDecodeError) as exc:
                self.reply({"ok": False, "error": f"bad request: {exc}"}, close=True)
                return
            if not isinstance(req, dict):
                self.reply({"ok": False, "error": "bad request: not a JSON object"}, close=True)
                return
            self.shim.handle(self, req)
        if self.mode in ("attach", "exec") and self.fd >= 0:
            self._frames()

    def _frames(self) -> None:
        try:
            frames = protocol.split_frames(self.inbuf)
        except ValueError:
            self.close()
            return
        for kind, payload in frames:
            if kind == protocol.STDIN:
                self._stdin(payload)
            elif kind == protocol.RESIZE:
                master = self.exec.master if self.exec is not None else self.shim.master
                if master >= 0:
                    resize(master, fastjson.loads(payload.decode()))

    def _stdin(self, payload: bytes) -> None:
        if self.exec is not None:
            writer = self.exec.stdin
        else:
            writer = self.shim.stdin if self.shim.stdin_owner is self else None
        if writer is None:
            return
        if payload:
            writer.write(payload)
        else:
            writer.close()

    def reply(self, msg: dict[str, Any], close: bool = False) -> None:
        self.send(fastjson.dumps(msg).encode() + b"\n")
        if close:
            self.close_when_flushed()

    def send(self, data: bytes) -> None:
        if self.fd < 0:
            return
        was_empty = not self.outbuf
        self.outbuf += data
        if len(self.outbuf) > MAX_PENDING:
            self.close()
            return
        self.flush()
        if was_empty and self.outbuf and self.fd >= 0 and not self.want_out:
            self.shim.modify(self.fd, IN | OUT)
            self.want_out = True

    def flush(self) -> None:
        try:
            while self.outbuf:
                del self.outbuf[: os.write(self.fd, self.outbuf)]
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if self.want_out:
            self.shim.modify(self.fd, IN)
            self.want_out = False
        if self.closing:
            self.close()

    def close_when_flushed(self) -> None:
        self.closing = True
        if not self.outbuf:
            self.close()

    def close(self) -> None:
        if self.fd < 0:
            return
        self.shim.unwatch(self.fd)
        os.close(self.fd)
        self.fd = -1
        self.outbuf.clear()
        self.shim.forget(self)
        if self.exec is not None:
            self.exec.conn_gone()


def read_chunk(fd: int) -> bytes | None:
    """One non-blocking read: None while nothing is there, ``b""`` at end of file, which an
    error counts as too (EIO on a pty whose slave side is closed)."""
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def resize(master: int, req: dict[str, Any]) -> None:
    rows, cols = int(req["rows"]), int(req["cols"])
    if not (0 < rows < 65536 and 0 < cols < 65536):
        raise ValueError("rows and cols must be between 1 and 65535")
    termios.tcsetwinsize(master, (rows, cols))
