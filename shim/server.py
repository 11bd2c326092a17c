"""The shim's event loop: container stdio, the log, requests, reaping and the exit file.

One thread and one epoll set. Every fd is non-blocking and has one handler; output is
written to the log and to attached clients as soon as it is read, so the shim holds no
more than what a slow client has not taken yet (and drops such a client past a limit).
"""

from __future__ import annotations

import _signal
import _socket
import os
import select
import time

from ocirt.foundation import fastjson
from ocirt.shim import protocol
from ocirt.shim.console import address, listen, receive_master
from ocirt.shim.errors import Failed, RequestError
from ocirt.shim.execs import Exec
from ocirt.shim.exitstatus import oom_counter, oom_kills, status_dict, write_exit_file
from ocirt.shim.lognet import LogOptionError
from ocirt.shim.logs import Log
from ocirt.shim.runtime import Runtime, RuntimeFailed, read_text, wait_for
from ocirt.shim.streams import IN, Conn, Writer, read_chunk, readable, resize

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ocirt.shim.args import Options
    from ocirt.shim.health import Health

FLUSH_GRACE = 2.0  # seconds to hand attached clients their last output after the exit


class Shim:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.dir = os.path.abspath(opts.state_dir)
        self.runtime = Runtime(opts.runtime, opts.runtime_root, opts.id, self.dir)
        info = {**opts.log_info, "id": opts.id}
        self.log = Log(
            opts.log_path, opts.log_driver, opts.log_max_size, opts.log_max_file, opts.log_opts, info
        )
        self.ep = select.epoll()
        self.handlers: dict[int, Callable[[int], object]] = {}
        self.init_pid = 0
        self.created = False
        self.started = False
        self.exit: dict[str, Any] | None = None
        self.oom_path: str | None = None
        self.oom_base = 0
        self.outputs: dict[int, int] = {}  # fd -> STDOUT/STDERR frame kind
        self.stdin: Writer | None = None
        self.master = -1
        self.attached: list[Conn] = []
        self.stdin_owner: Conn | None = None
        self.waiters: list[Conn] = []
        self.conns: list[Conn] = []
        self.execs: dict[int, Exec] = {}
        self.reaped: dict[int, int] = {}
        self.exec_seq = 0
        self.health: Health | None = None
        self.server: _socket.socket | None = None
        self.finish_at = 0.0

    # -- fds --------------------------------------------------------------
    def watch(self, fd: int, events: int, handler: Callable[[int], object]) -> None:
        self.ep.register(fd, events)
        self.handlers[fd] = handler

    def modify(self, fd: int, events: int) -> None:
        self.ep.modify(fd, events)

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.ep.unregister(fd)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- setup ------------------------------------------------------------
    def setup(self) -> int:
        """Create (and start) the container; its pid. Raises Failed with the runtime's text."""
        try:
            self.log.connect()
        except (OSError, LogOptionError) as exc:
            raise Failed(f"failed to initialize logging driver: {exc}") from None
        self._write_pid_file()
        self._signals()
        if self.opts.tty:
            self._create_tty()
        else:
            self._create_pipes()
        self.oom_path = oom_counter(self.init_pid)
        self.oom_base = oom_kills(self.oom_path)
        if not self.opts.no_start:
            self._start()
        self._listen()
        return self.init_pid

    def _write_pid_file(self) -> None:
        tmp = self.path(protocol.PID_FILE + ".tmp")
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.path(protocol.PID_FILE))

    def _signals(self) -> None:
        """SIGCHLD only wakes the loop (through the wakeup pipe); reaping happens there."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        _signal.signal(_signal.SIGCHLD, _ignore)
        self.watch(r, IN, lambda _ev: self._reap(r))

    def _create_args(self, console: str | None) -> list[str]:
        args = ["create", "--bundle", self.opts.bundle, "--pid-file", self.path("container.pid")]
        if console:
            args += ["--console-socket", console]
        return [*args, self.opts.id]

    def _create_pipes(self) -> None:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if self.opts.stdin:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        try:
            pid = self.runtime.spawn(self.runtime.argv(*self._create_args(None)), in_r, out_w, err_w)
        except RuntimeFailed as exc:
            raise Failed(str(exc)) from None
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        status = wait_for(pid)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        if status != 0:
            text = read_text(err_r) or read_text(out_r) or f"{self.opts.runtime} create failed"
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            raise Failed(text)
        self.created = True
        self.init_pid = self._read_pid(self.path("container.pid"))
        self._add_output(out_r, protocol.STDOUT)
        self._add_output(err_r, protocol.STDERR)
        if in_w >= 0:
            self.stdin = Writer(self, in_w, tty=False)

    def _create_tty(self) -> None:
        sock_path = self.path("console.sock")
        server = listen("console.sock")
        try:
            self.runtime.call(*self._create_args(address(sock_path)))
            self.created = True
            self.init_pid = self._read_pid(self.path("container.pid"))
            self.master = receive_master(server)
        except RuntimeFailed as exc:
            raise Failed(str(exc)) from None
        finally:
            server.close()
            os.unlink(sock_path)
        self._add_output(self.master, protocol.STDOUT)
        if self.opts.stdin:
            self.stdin = Writer(self, os.dup(self.master), tty=True)

    def _read_pid(self, path: str) -> int:
        with open(path) as f:
            return int(f.read().strip())

    def _start(self) -> None:
        try:
            self.runtime.call("start", self.opts.id)
        except RuntimeFailed as exc:
            raise Failed(str(exc)) from None
        self._started()

    def _started(self) -> None:
        self.started = True
        if self.opts.healthcheck:
            from ocirt.shim.health import Health

            self.health = Health(self, self.opts.healthcheck, self.opts.health_command)

    def _listen(self) -> None:
        self.server = listen(protocol.SOCKET_NAME)
        self.server.setblocking(False)
        self.watch(self.server.fileno(), IN, self._accept)

    def abort(self) -> None:
        """Undo a failed setup: the runtime's container and our files."""
        if self.created:
            try:
                self.runtime.call("delete", "--force", self.opts.id)
            except RuntimeFailed:
                pass
        self.cleanup()

    def cleanup(self) -> None:
        """The pid file goes last: clients take its absence to mean the shim is done."""
        for name in ("container.pid", protocol.SOCKET_NAME, protocol.PID_FILE):
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass

    # -- output -----------------------------------------------------------
    def _add_output(self, fd: int, kind: int) -> None:
        os.set_blocking(fd, False)
        self.outputs[fd] = kind
        self.watch(fd, IN, lambda _ev: self._read_output(fd))

    def _read_output(self, fd: int) -> bool:
        """One read; False at end-of-file (EIO on a pty whose slave is closed)."""
        data = read_chunk(fd)
        if data is None:
            return True
        if not data:
            self.unwatch(fd)
            return False
        kind = self.outputs[fd]
        self.log.write("stderr" if kind == protocol.STDERR else "stdout", data)
        packet = protocol.frame(kind, data)
        for conn in list(self.attached):
            conn.send(packet)
        return True

    def _drain_outputs(self) -> None:
        for fd in list(self.outputs):
            while fd in self.handlers and self._read_output(fd):
                if not readable(fd):
                    break

    # -- children ---------------------------------------------------------
    def _reap(self, wakeup: int) -> None:
        try:
            while os.read(wakeup, 256):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self._init_exited(status)
            elif pid in self.execs:
                self.execs.pop(pid).exited(status)
            elif len(self.reaped) < 256:
                self.reaped[pid] = status

    def _init_exited(self, status: int) -> None:
        exited = time.time_ns()
        self._drain_outputs()
        oom = oom_kills(self.oom_path) > self.oom_base
        self.exit = status_dict(status, oom, exited)
        write_exit_file(self.dir, self.exit)
        if self.opts.delete_on_exit:
            try:
                self.runtime.call("delete", self.opts.id)
            except RuntimeFailed:
                pass
        waiters, self.waiters = self.waiters, []
        for conn in waiters:
            conn.reply({"ok": True, "exit": self.exit}, close=True)
        packet = protocol.frame(protocol.EXIT, fastjson.dumps(self.exit).encode())
        attached, self.attached = self.attached, []
        for conn in attached:
            conn.send(packet)
            conn.close_when_flushed()
        self.finish_at = time.monotonic() + FLUSH_GRACE

    # -- the loop ---------------------------------------------------------
    def run(self) -> None:
        while not self._finished():
            timeout = 0.1 if self.exit is not None else -1
            health = self.health if self.exit is None else None
            if health is not None:
                timeout = health.wait()
            for fd, events in self.ep.poll(timeout):
                handler = self.handlers.get(fd)
                if handler is not None:
                    handler(events)
            if health is not None:
                health.tick()

    def _finished(self) -> bool:
        if self.exit is None:
            return False
        pending = any(c.outbuf for c in self.conns)
        return not pending or time.monotonic() > self.finish_at

    def finish(self) -> None:
        """After the exit file (and the runtime's delete): close up, run the exit command."""
        for conn in list(self.conns):
            conn.close()
        if self.server is not None:
            self.server.close()
        self.cleanup()
        self.log.close()
        if self.opts.exit_command:
            argv = [self.opts.exit_command, *self.opts.exit_command_args]
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            actions = [(os.POSIX_SPAWN_DUP2, null, n) for n in range(3)]
            try:
                os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions, setsid=True)
            except OSError:
                pass
            os.close(null)

    # -- requests -----------------------------------------------------------
    def _accept(self, _events: int) -> None:
        assert self.server is not None
        while True:
            try:
                fd, _ = self.server._accept()  # type: ignore[attr-defined]
            except BlockingIOError:
                return
            conn = Conn(self, fd)
            self.conns.append(conn)

    def handle(self, conn: Conn, req: dict[str, Any]) -> None:
        op = req.get("op")
        handler = _OPS.get(op if isinstance(op, str) else "")
        if handler is None:
            conn.reply({"ok": False, "error": f"unknown request {op!r}"}, close=True)
            return
        try:
            handler(self, conn, req)
        except (RuntimeFailed, RequestError, Failed) as exc:
            conn.reply({"ok": False, "error": str(exc)}, close=True)
        except (KeyError, TypeError, ValueError) as exc:
            conn.reply({"ok": False, "error": f"bad {op} request: {exc}"}, close=True)

    def status(self) -> str:
        return "stopped" if self.exit is not None else "running" if self.started else "created"

    def op_state(self, conn: Conn, req: dict[str, Any]) -> None:
        conn.reply(
            {
                "ok": True,
                "id": self.opts.id,
                "pid": self.init_pid,
                "status": self.status(),
                "shim_pid": os.getpid(),
                "exit": self.exit,
                "attached": len(self.attached),
            },
            close=True,
        )

    def op_start(self, conn: Conn, req: dict[str, Any]) -> None:
        if self.started or self.exit is not None:
            raise RequestError(f"container {self.opts.id} is {self.status()}, not created")
        self.runtime.call("start", self.opts.id)
        self._started()
        conn.reply({"ok": True}, close=True)

    def op_kill(self, conn: Conn, req: dict[str, Any]) -> None:
        sig = int(req.get("signal", _signal.SIGTERM))
        if self.exit is not None:
            raise RequestError(f"container {self.opts.id} is not running")
        if req.get("all"):
            self.runtime.call("kill", "--all", self.opts.id, str(sig))
        else:
            os.kill(self.init_pid, sig)  # our child: the pid cannot be reused before we reap it
        conn.reply({"ok": True}, close=True)

    def op_wait(self, conn: Conn, req: dict[str, Any]) -> None:
        if self.exit is not None:
            conn.reply({"ok": True, "exit": self.exit}, close=True)
        else:
            conn.mode = "wait"
            self.waiters.append(conn)

    def op_resize(self, conn: Conn, req: dict[str, Any]) -> None:
        if self.master < 0:
            raise RequestError(f"container {self.opts.id} has no terminal")
        resize(self.master, req)
        conn.reply({"ok": True}, close=True)

    def op_close_stdin(self, conn: Conn, req: dict[str, Any]) -> None:
        if self.stdin is not None:
            self.stdin.close()
        conn.reply({"ok": True}, close=True)

    def op_attach(self, conn: Conn, req: dict[str, Any]) -> None:
        if req.get("stdin"):
            if self.stdin is None:
                raise RequestError(f"container {self.opts.id} has no open stdin")
            if self.stdin_owner is not None:
                raise RequestError("another client holds the stdin")
            self.stdin_owner = conn
        conn.mode = "attach"
        conn.reply({"ok": True})
        if self.exit is not None:
            conn.send(protocol.frame(protocol.EXIT, fastjson.dumps(self.exit).encode()))
            conn.close_when_flushed()
        else:
            self.attached.append(conn)

    def op_exec(self, conn: Conn, req: dict[str, Any]) -> None:
        if self.exit is not None or not self.started:
            raise RequestError(f"container {self.opts.id} is {self.status()}, not running")
        args = req["args"]
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise RequestError("exec: args must be a non-empty list of strings")
        self.exec_seq += 1
        session = Exec(self, conn, self.exec_seq)
        session.start(req)
        conn.mode = "exec"
        conn.exec = session
        conn.reply({"ok": True, "pid": session.pid})
        if session.pid in self.reaped:
            session.exited(self.reaped.pop(session.pid))
        else:
            self.execs[session.pid] = session

    # -- conn bookkeeping ---------------------------------------------------
    def forget(self, conn: Conn) -> None:
        for group in (self.conns, self.attached, self.waiters):
            if conn in group:
                group.remove(conn)
        if self.stdin_owner is conn:
            self.stdin_owner = None


_OPS: dict[str, Callable[[Shim, Conn, dict[str, Any]], None]] = {
    "state": Shim.op_state,
    "start": Shim.op_start,
    "kill": Shim.op_kill,
    "wait": Shim.op_wait,
    "resize": Shim.op_resize,
    "close-stdin": Shim.op_close_stdin,
    "attach": Shim.op_attach,
    "exec": Shim.op_exec,
}


def _ignore(signum: int, frame: object) -> None:
    pass
