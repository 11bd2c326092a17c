"""The shim's unix sockets, and its end of the runtime's ``--console-socket`` (runc's
SCM_RIGHTS protocol)."""

from __future__ import annotations

import _socket
import os
import select
import sys

from ocirt.shim.errors import Failed

CONSOLE_TIMEOUT = 10.0
SUN_PATH_MAX = 107  # sockaddr_un.sun_path less its terminating NUL


def listen(name: str) -> _socket.socket:
    """A socket bound to ``name`` in the current directory (the shim lives in its state
    directory): a relative name is never too long for ``sockaddr_un``."""
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    sock.bind(name)
    os.chmod(name, 0o600)
    sock.listen(16)
    return sock


def address(path: str) -> str:
    """How another process reaches the socket at ``path`` (in our working directory):
    the path itself, or past the 107 bytes of ``sun_path`` the same file through
    ``/proc/<shim pid>/cwd``."""
    if len(path.encode()) <= SUN_PATH_MAX:
        return path
    return f"/proc/{os.getpid()}/cwd/{os.path.basename(path)}"


def receive_master(server: _socket.socket) -> int:
    """The pty master the runtime sent over the console socket (runc's protocol)."""
    if not select.select([server.fileno()], [], [], CONSOLE_TIMEOUT)[0]:
        raise Failed(f"the runtime sent no terminal within {CONSOLE_TIMEOUT:g} s")
    fd, _ = server._accept()  # type: ignore[attr-defined]
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
    try:
        conn.settimeout(CONSOLE_TIMEOUT)
        _, ancdata, _, _ = conn.recvmsg(4096, _socket.CMSG_SPACE(4 * 4), _socket.MSG_CMSG_CLOEXEC)
    finally:
        conn.close()
    fds = [
        int.from_bytes(data[i : i + 4], sys.byteorder)
        for level, kind, data in ancdata
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
        for i in range(0, len(data) - len(data) % 4, 4)
    ]
    if not fds:
        raise Failed("the console socket message carried no file descriptor")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]
