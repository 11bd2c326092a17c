"""config.md Process terminal and consoleSize, config-linux.md Default Devices (/dev/console):
the runtime sends the pty master over ``--console-socket`` (runc's protocol: SCM_RIGHTS)."""

from __future__ import annotations

import array
import os
import select
import socket
import time
from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, SHOULD, Case, Fail, add, expect

CFG, CL = "config.md", "config-linux.md"


def _recv_master(server: socket.socket) -> int:
    server.settimeout(5)
    try:
        conn, _ = server.accept()
    except TimeoutError:
        raise Fail("connection on the console socket", "none within 5 s", "the runtime connects") from None
    with conn:
        conn.settimeout(5)
        fds = array.array("i")
        _, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if len(fds) != 1:
        raise Fail("file descriptors sent over the console socket", len(fds), 1)
    return fds[0]


def _read_all(master: int, timeout: float = 10) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([master], [], [], deadline - time.monotonic())[0]:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the container side closed
            break
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").replace("\r\n", "\n")


def terminal_session(ctx: Context, script: str, edit: Any = None) -> tuple[str, int]:
    """Output of ``script`` run on a terminal, and the received fd's isatty (1 or 0)."""
    cfg = ctx.config(["sh", "-c", script])
    cfg["process"]["terminal"] = True
    cfg["process"]["consoleSize"] = {"height": 33, "width": 111}
    if edit is not None:
        edit(cfg)
    sock_path = ctx.path("console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(sock_path)
        server.listen(1)
        cid, _ = ctx.create(cfg, "--console-socket", sock_path)
        master = _recv_master(server)
    finally:
        server.close()
    try:
        tty = int(os.isatty(master))
        res = ctx.cli("start", cid)
        if not res.ok:
            raise Fail("start", res.brief(), "exit 0")
        return _read_all(master), tty
    finally:
        os.close(master)


def _master(ctx: Context) -> None:
    out, tty = terminal_session(ctx, "echo hello")
    expect("received fd is a terminal", tty, 1)
    expect("output through the pty", out.strip(), "hello")


_master.__doc__ = """terminal true attaches a pseudoterminal; with runc's CLI its master goes to
the --console-socket peer, which sees the process's output on it."""
add(Case("terminal.console-socket", CFG, "Process", MUST, _master))

PROBES = [
    (
        "terminal.stdio",
        CFG,
        "Process",
        MUST,
        "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty",
        "all-tty",
        "terminal true: stdin, stdout and stderr are the terminal.",
    ),
    (
        "terminal.console-size",
        CFG,
        "Process",
        MUST,
        "stty size",
        "33 111",
        "consoleSize sets the terminal's height and width in characters.",
    ),
    (
        "terminal.dev-console",
        CL,
        "Default Devices",
        MUST,
        '[ "$(stat -L -c %t:%T /dev/console)" = "$(stat -L -c %t:%T $(tty))" ] && echo same',
        "same",
        "/dev/console is set up when terminal is enabled, bind-mounting the process's pty over it.",
    ),
    (
        "terminal.controlling",
        CFG,
        "Process",
        SHOULD,
        "echo hi > /dev/tty && echo ctty",
        "hi\nctty",
        "The terminal is the process's controlling terminal (/dev/tty opens).",
    ),
]


def _probe(script: str, want: str) -> Any:
    def check(ctx: Context) -> None:
        out, _ = terminal_session(ctx, script)
        expect("output on the terminal", out.strip(), want)

    return check


for _id, _spec, _heading, _level, _script, _want, _doc in PROBES:
    _check = _probe(_script, _want)
    _check.__doc__ = _doc
    add(Case(_id, _spec, _heading, _level, _check))
