"""The shim zygote: one pre-imported, idle process that forks every new shim.

A Python shim's memory is mostly the interpreter and its imported modules. Forked from a
common parent whose objects are frozen (``gc.freeze``, so no collection writes to them),
shims share those pages copy-on-write and each pays only for what it changes: the
difference between ~4.4 MiB and ~1.5 MiB of PSS per container on the bench machine.

``ocirt-shim`` (the short-lived first process) hands its argument list, environment,
working directory and sync fd to the zygote over a SOCK_SEQPACKET unix socket; the zygote
forks, the child starts a new session and forks the shim, exactly as a direct start would.
The zygote starts on first use, answers only its own uid, refuses requests from a newer
ocirt (its code stamp differs: the caller then starts a fresh zygote), and exits when idle.
"""

from __future__ import annotations

import _signal
import _socket
import gc
import os
import select
import sys

from ocirt.foundation import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/run/ocirt-shim/zygote.sock"
IDLE_EXIT = 600.0  # seconds without a request
READY_TIMEOUT = 10.0
READY_FD = 3
_MAX_REQUEST = 1 << 20


def socket_path() -> str | None:
    """``$OCIRT_SHIM_ZYGOTE``: the socket, or ``none`` to start every shim directly."""
    path = os.environ.get("OCIRT_SHIM_ZYGOTE", DEFAULT_PATH)
    return None if path in ("", "none") else path


def code_stamp() -> str:
    """Changes whenever the shim's code does, so a zygote never runs stale code."""
    here = os.path.dirname(os.path.abspath(__file__))
    stamps = [
        os.stat(os.path.join(here, n)).st_mtime_ns for n in sorted(os.listdir(here)) if n.endswith(".py")
    ]
    return f"{sys.version_info[:3]}-{max(stamps)}-{len(stamps)}"


class ZygoteError(Exception):
    """The zygote took the request but did not fork: starting directly could start twice."""


def hand_over(path: str, argv: list[str], sync_fd: int) -> bool:
    """Ask a zygote (started here if need be) to fork the shim; False: start it directly."""
    for attempt in range(2):
        answer = request(path, argv, sync_fd)
        if answer == "ok":
            return True
        if answer not in ("unreachable", "stale"):
            raise ZygoteError(f"shim zygote {path}: {answer}")
        if attempt == 0 and not _start(path):
            return False
    return False


def request(path: str, argv: list[str], sync_fd: int) -> str:
    """``ok`` (forked), ``unreachable``, ``stale`` (not forked) or what went wrong."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(READY_TIMEOUT)
        try:
            sock.connect(path)
        except OSError:
            return "unreachable"
        msg = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "stamp": code_stamp()}
        fds = [sync_fd] if sync_fd >= 0 else []
        anc = [
            (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))
        ]
        try:
            sock.sendmsg([fastjson.dumps(msg).encode()], anc if fds else [])
            return sock.recv(4096).decode() or "closed the connection"
        except OSError as exc:
            return f"no answer ({exc.strerror or exc})"
    finally:
        sock.close()


def _start(path: str) -> bool:
    """Run ``ocirt-shim --zygote PATH`` in a new session and wait until it listens.

    A fresh process rather than a fork of this one: it holds none of the caller's fds, and
    its command line (which the shims it forks show too) says what it is."""
    r, w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate((null, null, null, w))]
    flags = "".join(f for f, on in (("I", sys.flags.isolated), ("S", sys.flags.no_site)) if on)
    argv = [sys.executable, *([f"-{flags}"] if flags else []), sys.argv[0], "--zygote", path]
    try:
        os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    except OSError:
        return False
    finally:
        os.close(w)
        os.close(null)
    try:
        return bool(select.select([r], [], [], READY_TIMEOUT)[0]) and os.read(r, 1) == b"1"
    finally:
        os.close(r)


def serve(path: str) -> None:
    """The zygote's life: listen, say so on fd 3, fork shims until idle."""
    os.chdir("/")
    os.umask(0o022)
    try:
        server = _listen(path)
    except OSError:
        os.close(READY_FD)  # the caller reads end-of-file and starts its shim directly
        return
    os.write(READY_FD, b"1")
    os.close(READY_FD)
    _serve(server, path)


def _listen(path: str) -> _socket.socket:
    """Bound beside the final name and renamed over it: a concurrent zygote just loses."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    sock.bind(tmp)
    os.chmod(tmp, 0o600)
    sock.listen(64)
    os.rename(tmp, path)
    with open(f"{path}.pid", "w") as f:
        f.write(f"{os.getpid()}\n")
    return sock


def _serve(server: _socket.socket, path: str) -> None:
    # imported here once, so that every shim forked below shares them
    import ocirt.runtime.syscalls
    import ocirt.shim.lifecycle
    import ocirt.shim.server  # noqa: F401

    stamp = code_stamp()
    _signal.signal(_signal.SIGTERM, _exit_on_signal)
    gc.collect()
    gc.freeze()
    try:
        while select.select([server.fileno()], [], [], IDLE_EXIT)[0]:
            fd, _ = server._accept()  # type: ignore[attr-defined]
            conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, fd)
            try:
                if not _one(conn, server, stamp):
                    return
            except (OSError, ValueError, KeyError, TypeError):
                pass
            finally:
                conn.close()
    finally:
        _unlink_if_ours(path)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _unlink_if_ours(path: str) -> None:
    """A newer zygote may own the name by now: leave its socket alone."""
    try:
        with open(f"{path}.pid") as f:
            if int(f.read()) != os.getpid():
                return
        os.unlink(path)
        os.unlink(f"{path}.pid")
    except (OSError, ValueError):
        pass


def _one(conn: _socket.socket, server: _socket.socket, stamp: str) -> bool:
    """Serve one request; False when this zygote must give way to a newer one."""
    creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    if int.from_bytes(creds[4:8], sys.byteorder) != os.getuid():
        conn.send(b"refused: not the zygote's user")
        return True
    data, anc, _, _ = conn.recvmsg(_MAX_REQUEST, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
    fds = [
        int.from_bytes(d[:4], sys.byteorder)
        for level, kind, d in anc
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
    ]
    req = fastjson.loads(data.decode())
    if req.get("stamp") != stamp:
        conn.send(b"stale")
        for fd in fds:
            os.close(fd)
        return False
    pid = os.fork()
    if pid == 0:
        server.close()
        conn.close()
        _become_shim(req, fds[0] if fds else -1)
    for fd in fds:
        os.close(fd)
    os.waitpid(pid, 0)
    conn.send(b"ok")
    return True


def _become_shim(req: dict[str, Any], sync_fd: int) -> None:
    """In the forked child: the caller's environment and directory, then a shim's life."""
    from ocirt.shim import lifecycle

    code = 1
    try:
        _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
        os.setsid()
        if os.fork():
            os._exit(0)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in req["env"].items()})
        os.chdir(str(req["cwd"]))
        opts = lifecycle.prepare([str(a) for a in req["argv"]], sync_fd)
        code = lifecycle.serve(opts)
    except BaseException as exc:
        if sync_fd >= 0:
            error = {"error": f"ocirt-shim (zygote child): {type(exc).__name__}: {exc}"}
            os.write(sync_fd, fastjson.dumps(error).encode() + b"\n")
    finally:
        os._exit(code)
