"""Run a manager's client on a real pseudo-terminal, as a user at a shell would.

``-t`` makes each manager ask the runtime for a console (``--console-socket``) and copy
between that pty and ours; the window size we set here must come out inside the container.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence

ROWS, COLS = 33, 101
# ctr and docker resize the container's pty only after starting the process, as with runc:
# wait for the size to arrive rather than race it (busybox stty exits 0 even when it fails).
# Reads a line typed at the terminal, then shows the terminal and its size.
INTERACT = 'echo ready; read line; echo "got-$line"'
TYPED = b"hello\n"
SHOW_TTY = (
    'tty; for i in $(seq 50); do s=$(stty size 2>/dev/null); [ -n "$s" ] && break; sleep 0.1; done; echo "$s"'
)


def check_interactive(status: int, out: str, code: int, tty: str = "/dev/pts/", sized: bool = True) -> None:
    """What ``INTERACT; SHOW_TTY; exit code`` run on ``run_on_pty`` must show: the typed line
    read back, the container's terminal ``tty`` and, if ``sized``, our window size."""
    assert status == code, out
    assert "got-hello" in out, out
    assert tty in out, out
    if sized:
        assert f"{ROWS} {COLS}" in out, out


def run_on_pty(
    argv: Sequence[str], env: dict[str, str] | None = None, typed: bytes = b"", timeout: float = 60
) -> tuple[int, str]:
    """Exit status and everything written to the terminal, carriage returns dropped.

    ``typed`` is what the user types once the container has written its first output.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    try:
        proc = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
    finally:
        os.close(slave)
    try:
        output = _drain(master, proc, time.monotonic() + timeout, typed)
        return proc.wait(timeout=10), output.decode(errors="replace").replace("\r", "")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _drain(master: int, proc: subprocess.Popen[bytes], deadline: float, typed: bytes) -> bytes:
    """Read until every holder of the slave is gone (EIO) or the client exited and went quiet."""
    chunks: list[bytes] = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        if typed and not chunks:
            os.write(master, typed)
        chunks.append(data)
    return b"".join(chunks)
