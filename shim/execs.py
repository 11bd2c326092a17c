"""``exec`` requests: a process the runtime starts detached and the shim then reaps."""

from __future__ import annotations

import os
import time

from ocirt.foundation import fastjson
from ocirt.shim import protocol
from ocirt.shim.console import address, listen, receive_master
from ocirt.shim.exitstatus import status_dict
from ocirt.shim.runtime import RuntimeFailed, read_text, wait_for
from ocirt.shim.streams import IN, Writer, read_chunk, readable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.shim.server import Shim
    from ocirt.shim.streams import Conn


class Exec:
    """A process run by ``<runtime> exec --detach``: reparented to the shim, its output
    framed to the one client that asked for it."""

    def __init__(self, shim: Shim, conn: Conn, seq: int) -> None:
        self.shim = shim
        self.conn: Conn | None = conn
        self.name = f"exec-{seq}"
        self.pid = 0
        self.outputs: dict[int, int] = {}
        self.stdin: Writer | None = None
        self.master = -1

    def _args(self, req: dict[str, Any], console: str | None) -> list[str]:
        """``exec --process``: the bundle's process with the request on top, so the pty
        has its size before the program runs and nothing is left to flag parsing."""
        path = self.shim.path(self.name + ".json")
        with open(path, "w") as f:
            f.write(fastjson.dumps(exec_process(self.shim.opts.bundle, req)))
        args = ["exec", "--detach", "--process", path, "--pid-file", self.shim.path(self.name + ".pid")]
        if console:
            args += ["--console-socket", console]
        return [*args, self.shim.opts.id]

    def start(self, req: dict[str, Any]) -> None:
        try:
            if req.get("tty"):
                self._start_tty(req)
            else:
                self._start_pipes(req)
        finally:
            self.forget_files()

    def _start_tty(self, req: dict[str, Any]) -> None:
        sock_path = self.shim.path(self.name + ".sock")
        server = listen(self.name + ".sock")
        try:
            self.shim.runtime.call(*self._args(req, address(sock_path)))
            self.pid = self._take_pid()
            self.master = receive_master(server)
        finally:
            server.close()
            os.unlink(sock_path)
        self._add(self.master, protocol.STDOUT)
        if req.get("stdin"):
            self.stdin = Writer(self.shim, os.dup(self.master), tty=True)

    def _start_pipes(self, req: dict[str, Any]) -> None:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if req.get("stdin"):
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        runtime = self.shim.runtime
        try:
            pid = runtime.spawn(runtime.argv(*self._args(req, None)), in_r, out_w, err_w)
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        status = wait_for(pid)
        if status != 0:
            os.set_blocking(err_r, False)
            os.set_blocking(out_r, False)
            text = read_text(err_r) or read_text(out_r) or "exec failed"
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            raise RuntimeFailed(text)
        self.pid = self._take_pid()
        self._add(out_r, protocol.STDOUT)
        self._add(err_r, protocol.STDERR)
        if in_w >= 0:
            self.stdin = Writer(self.shim, in_w, tty=False)

    def _take_pid(self) -> int:
        path = self.shim.path(self.name + ".pid")
        with open(path) as f:
            return int(f.read().strip())

    def forget_files(self) -> None:
        for suffix in (".json", ".pid"):
            try:
                os.unlink(self.shim.path(self.name + suffix))
            except FileNotFoundError:
                pass

    def _add(self, fd: int, kind: int) -> None:
        os.set_blocking(fd, False)
        self.outputs[fd] = kind
        self.shim.watch(fd, IN, lambda _ev: self._read(fd))

    def _read(self, fd: int) -> bool:
        data = read_chunk(fd)
        if data is None:
            return True
        if not data:
            self._close(fd)
            return False
        self._deliver(fd, data)
        return True

    def _deliver(self, fd: int, data: bytes) -> None:
        if self.conn is not None:
            self.conn.send(protocol.frame(self.outputs[fd], data))

    def _close(self, fd: int) -> None:
        """Once closed, the number may be reused: a late resize must not reach it."""
        self.shim.unwatch(fd)
        os.close(fd)
        del self.outputs[fd]
        if fd == self.master:
            self.master = -1

    def _drain(self) -> None:
        """The process is gone but its last output may still sit in the pipes."""
        for fd in list(self.outputs):
            while fd in self.outputs and self._read(fd) and readable(fd):
                pass
        for fd in list(self.outputs):
            self._close(fd)

    def exited(self, status: int) -> None:
        self._drain()
        if self.stdin is not None and self.stdin.fd >= 0:
            self.stdin.buf.clear()
            self.stdin.close()
        if self.conn is not None:
            exit_json = fastjson.dumps(status_dict(status, False, time.time_ns())).encode()
            self.conn.send(protocol.frame(protocol.EXIT, exit_json))
            self.conn.close_when_flushed()
            self.conn = None

    def conn_gone(self) -> None:
        """The client left: the process runs on, its output is dropped."""
        self.conn = None


def exec_process(bundle: str, req: dict[str, Any]) -> dict[str, Any]:
    with open(os.path.join(bundle, "config.json")) as f:
        proc: dict[str, Any] = dict(fastjson.loads(f.read()).get("process") or {})
    proc["args"] = list(req["args"])
    proc["terminal"] = bool(req.get("tty"))
    extra = [str(e) for e in req.get("env") or []]
    names = {e.partition("=")[0] for e in extra}
    proc["env"] = [e for e in proc.get("env") or [] if e.partition("=")[0] not in names] + extra
    if req.get("cwd"):
        proc["cwd"] = str(req["cwd"])
    if req.get("user"):
        uid, _, gid = str(req["user"]).partition(":")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    size = req.get("size")
    if size:
        proc["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
    else:
        proc.pop("consoleSize", None)
    return proc
