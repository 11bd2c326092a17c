"""What a manager uses to start and talk to ``ocirt-shim`` (stdlib and ocirt.shim only).

``launch`` starts a shim and returns once the container's pid (or the runtime's error) is
known; ``ShimClient`` speaks the socket protocol of docs/shim-protocol.md to a running
shim, found again from nothing but its state directory. When the shim is gone the client
says so (``ShimGone``) instead of guessing: the exit file, if any, is the truth, and
otherwise the manager must ask the runtime.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ocirt.foundation import procfs
from ocirt.shim import logs, protocol, zygote

DETACH_KEYS = b"\x10\x11"  # Ctrl-p Ctrl-q, as docker and podman
SUN_PATH_MAX = 107


class ShimError(Exception):
    """A request failed; the text is the shim's or the runtime's own message."""


class ShimGone(ShimError):
    """No shim answers on the socket: it exited or was killed."""


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int  # the code, or 128 + signal
    signal: int | None
    oom_killed: bool
    exited_at: str  # RFC 3339 with nanoseconds, UTC

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExitStatus:
        return cls(int(d["exit_code"]), d.get("signal"), bool(d.get("oom_killed")), str(d["exited_at"]))


@dataclass
class ShimOptions:
    id: str
    bundle: str
    state_dir: str
    runtime: str = "ocirt"
    runtime_root: str | None = None
    log_path: str | None = None
    log_driver: str = logs.DEFAULT_DRIVER  # one of logs.DRIVERS
    log_max_size: int = 0  # bytes; 0: no rotation
    log_max_file: int = 1
    log_opts: dict[str, str] = field(default_factory=dict)  # a sending driver's options
    log_info: dict[str, str] = field(default_factory=dict)  # the container as its messages name it
    healthcheck: dict[str, Any] | None = None  # docker's HealthConfig, defaults filled in
    health_command: list[str] = field(default_factory=list)  # run with the new status appended
    tty: bool = False
    stdin: bool = False
    exit_command: str | None = None
    exit_command_args: list[str] = field(default_factory=list)
    no_start: bool = False
    delete_on_exit: bool = False
    shim_path: str = field(default_factory=lambda: default_shim_path())

    def argv(self, sync_fd: int) -> list[str]:
        args = [self.shim_path, "--id", self.id, "--bundle", self.bundle, "--runtime", self.runtime]
        args += ["--state-dir", os.path.abspath(self.state_dir), "--sync-fd", str(sync_fd)]
        if self.runtime_root:
            args += ["--runtime-root", self.runtime_root]
        if self.log_path:
            args += ["--log-path", self.log_path]
        args += ["--log-driver", self.log_driver]
        args += ["--log-max-size", str(self.log_max_size), "--log-max-file", str(self.log_max_file)]
        for key, value in self.log_opts.items():
            args += ["--log-opt", f"{key}={value}"]
        for key, value in self.log_info.items():
            args += ["--log-info", f"{key}={value}"]
        if self.healthcheck:
            args += ["--healthcheck", json.dumps(self.healthcheck)]
            for arg in self.health_command:
                args += ["--health-command-arg", arg]
        if self.exit_command:
            args += ["--exit-command", self.exit_command]
            for arg in self.exit_command_args:
                args += ["--exit-command-arg", arg]
        flags = (self.tty, self.stdin, self.no_start, self.delete_on_exit)
        names = ("--tty", "--stdin", "--no-start", "--delete-on-exit")
        return args + [name for name, on in zip(names, flags, strict=True) if on]


@dataclass(frozen=True)
class ShimHandle:
    shim_pid: int
    container_pid: int
    state_dir: str

    @property
    def client(self) -> ShimClient:
        return ShimClient(self.state_dir)


def default_shim_path() -> str:
    return os.environ.get("OCIRT_SHIM") or os.path.join(os.path.dirname(sys.executable), "ocirt-shim")


def launch(opts: ShimOptions, timeout: float = 60.0) -> ShimHandle:
    """Start a detached shim; return when it reported the container's pid.

    The shim forks twice and its first process exits at once, so nothing here waits on the
    container; the sync pipe stays open until the shim knows the pid or the error.
    """
    os.makedirs(opts.state_dir, exist_ok=True)
    r, w = os.pipe()
    if _zygote_forked(opts, w):
        os.close(w)
        try:
            raw = _read_to_eof(r, timeout)
        finally:
            os.close(r)
        return _handle(opts, raw, "the shim zygote's child reported nothing")
    import subprocess  # the zygote usually forks the shim; an exit command never does

    try:
        proc = subprocess.Popen(
            opts.argv(w),
            pass_fds=(w,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(r)
        os.close(w)
        raise ShimError(f"cannot start {opts.shim_path}: {exc.strerror}") from None
    os.close(w)
    try:
        raw = _read_to_eof(r, timeout)
    finally:
        os.close(r)
    _, err = proc.communicate(timeout=timeout)
    text = err.decode(errors="replace").strip() or f"ocirt-shim exited with status {proc.returncode}"
    return _handle(opts, raw, text)


def _zygote_forked(opts: ShimOptions, sync_fd: int) -> bool:
    """Ask a running zygote directly, sparing an interpreter start; when there is none (or
    it is stale) the ``ocirt-shim`` command starts one."""
    path = zygote.socket_path()
    if path is None or opts.shim_path != default_shim_path():
        return False
    answer = zygote.request(path, opts.argv(sync_fd)[1:], sync_fd)
    if answer in ("unreachable", "stale"):
        return False
    if answer != "ok":
        raise ShimError(f"shim zygote {path}: {answer}")
    return True


def _handle(opts: ShimOptions, raw: bytes, silent: str) -> ShimHandle:
    if not raw:
        raise ShimError(silent)
    msg = json.loads(raw)
    if "error" in msg:
        raise ShimError(msg["error"])
    return ShimHandle(int(msg["shim_pid"]), int(msg["pid"]), os.path.abspath(opts.state_dir))


def _read_to_eof(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ShimError(f"ocirt-shim reported nothing within {timeout:g} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def read_exit(state_dir: str) -> ExitStatus | None:
    """The recorded exit status; None while the container runs or if its shim died first."""
    try:
        with open(os.path.join(state_dir, protocol.EXIT_FILE)) as f:
            return ExitStatus.from_dict(json.load(f))
    except FileNotFoundError:
        return None


class ShimClient:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.socket_path = os.path.join(self.state_dir, protocol.SOCKET_NAME)

    def shim_pid(self) -> int | None:
        try:
            with open(os.path.join(self.state_dir, protocol.PID_FILE)) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self) -> bool:
        """The pid file names a live process that started before the file was written: a
        process that took the pid over after the shim died started after it. (The command
        line cannot tell: shims forked by the zygote show the zygote's.)"""
        pid = self.shim_pid()
        if pid is None:
            return False
        try:
            written = os.stat(os.path.join(self.state_dir, protocol.PID_FILE)).st_mtime
        except FileNotFoundError:
            return False
        return procfs.alive_since(pid, written)

    def state(self) -> dict[str, Any]:
        """``{"id", "pid", "status": created|running|stopped, "shim_pid", "exit"}``."""
        return self._call({"op": "state"})

    def start(self) -> None:
        self._call({"op": "start"})

    def kill(self, signal: int, all: bool = False) -> None:
        self._call({"op": "kill", "signal": signal, "all": all})

    def resize(self, rows: int, cols: int) -> None:
        self._call({"op": "resize", "rows": rows, "cols": cols})

    def close_stdin(self) -> None:
        self._call({"op": "close-stdin"})

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """Block until the container exits; a shim that already finished leaves its exit file."""
        try:
            reply = self._call({"op": "wait"}, timeout)
        except ShimGone:
            status = read_exit(self.state_dir)
            if status is None:
                raise
            return status
        return ExitStatus.from_dict(reply["exit"])

    def exec(
        self,
        args: list[str],
        *,
        tty: bool = False,
        stdin: int | None = None,
        stdout: int = 1,
        stderr: int = 2,
        env: list[str] | None = None,
        user: str | None = None,
        cwd: str | None = None,
        size: tuple[int, int] | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run ``args`` in the container, copying its stdio from/to the given fds; its status."""
        req = {"op": "exec", "args": args, "tty": tty, "stdin": stdin is not None, "env": env or []}
        req.update({"user": user, "cwd": cwd, "size": list(size) if size else None})
        sock = self._open(req, timeout)
        with sock:
            status = _stream(sock, stdin, stdout, stderr, None, timeout)
        if status is None:
            raise ShimError("exec: the shim closed the connection before the process exited")
        return status.exit_code

    def attach(
        self,
        stdin: int | None = None,
        stdout: int = 1,
        stderr: int = 2,
        detach_keys: bytes = DETACH_KEYS,
        timeout: float | None = None,
        on_attached: Callable[[], None] | None = None,
    ) -> ExitStatus | None:
        """Copy the live output to the fds and ``stdin`` to the container until it exits
        (its status), or None once the detach keys are typed or the shim hangs up.
        ``on_attached`` runs once the shim accepted the attach (e.g. to start a container
        created with ``no_start``, so no output is missed)."""
        sock = self._open({"op": "attach", "stdin": stdin is not None}, timeout)
        with sock:
            if on_attached is not None:
                on_attached()
            return _stream(sock, stdin, stdout, stderr, detach_keys or None, timeout)

    def _connect(self, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            if len(self.socket_path.encode()) <= SUN_PATH_MAX:
                sock.connect(self.socket_path)
            else:
                self._connect_long(sock)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise ShimGone(f"no shim listens on {self.socket_path}") from None
        return sock

    def _connect_long(self, sock: socket.socket) -> None:
        """Past sockaddr_un's 107 bytes: the same file through our own fd of its directory."""
        dirfd = os.open(self.state_dir, os.O_PATH | os.O_CLOEXEC)
        try:
            sock.connect(f"/proc/self/fd/{dirfd}/{protocol.SOCKET_NAME}")
        finally:
            os.close(dirfd)

    def _open(self, req: dict[str, Any], timeout: float | None) -> socket.socket:
        """Send ``req``; return the socket, now carrying frames, once the shim accepted it."""
        sock = self._connect(timeout)
        try:
            _reply(sock, req)
        except BaseException:
            sock.close()
            raise
        return sock

    def _call(self, req: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
        with self._connect(timeout) as sock:
            return _reply(sock, req)


def _reply(sock: socket.socket, req: dict[str, Any]) -> dict[str, Any]:
    """One request line out, one reply line in, read byte-wise so no frame is swallowed."""
    try:
        sock.sendall(json.dumps(req).encode() + b"\n")
        line = bytearray()
        while not line.endswith(b"\n"):
            b = sock.recv(1)
            if not b:
                raise ShimGone(f"the shim closed the connection during {req['op']}")
            line += b
    except (BrokenPipeError, ConnectionResetError):
        raise ShimGone(f"the shim closed the connection during {req['op']}") from None
    except TimeoutError:
        raise ShimError(f"{req['op']}: no answer from the shim in time") from None
    reply: dict[str, Any] = json.loads(line)
    if not reply.get("ok"):
        raise ShimError(reply.get("error", "request failed"))
    return reply


def _stream(
    sock: socket.socket,
    stdin: int | None,
    stdout: int,
    stderr: int,
    detach_keys: bytes | None,
    timeout: float | None,
) -> ExitStatus | None:
    deadline = None if timeout is None else time.monotonic() + timeout
    buf = bytearray()
    held = b""
    watch = [sock.fileno()] + ([stdin] if stdin is not None else [])
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = select.select(watch, [], [], left)[0]
        if not ready:
            raise ShimError(f"no exit within {timeout:g} s")
        if stdin is not None and stdin in ready:
            data = os.read(stdin, 65536)
            if detach_keys is not None:
                send, held, detach = _scan_detach(held + data if data else held, detach_keys, not data)
                if send:
                    sock.sendall(protocol.frame(protocol.STDIN, send))
                if detach:
                    return None
            elif data:
                sock.sendall(protocol.frame(protocol.STDIN, data))
            if not data:
                sock.sendall(protocol.frame(protocol.STDIN, b""))
                watch.remove(stdin)
        if sock.fileno() in ready:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            buf += chunk
            for kind, payload in protocol.split_frames(buf):
                if kind == protocol.EXIT:
                    return ExitStatus.from_dict(json.loads(payload))
                _write_all(stderr if kind == protocol.STDERR else stdout, payload)


def _scan_detach(pending: bytes, keys: bytes, eof: bool) -> tuple[bytes, bytes, bool]:
    """(bytes to send, bytes held back, detach?): what could still become the detach
    sequence waits for the next read, so the container never sees half of it."""
    at = pending.find(keys)
    if at >= 0:
        return pending[:at], b"", True
    if eof:
        return pending, b"", False
    hold = next((n for n in range(min(len(keys) - 1, len(pending)), 0, -1) if pending.endswith(keys[:n])), 0)
    return pending[: len(pending) - hold], pending[len(pending) - hold :], False


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
