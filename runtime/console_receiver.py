"""``ocirt-console-receiver``: the other end of ``--console-socket``, like runc's ``recvtty``.

It listens on a unix socket, takes the one pty master a runtime sends (the name must be
``/dev/ptmx``, as runc sends it), and then either proxies it to its own terminal or plays a
scripted session: ``--send`` and ``--expect`` steps run in the order given, and the whole
transcript goes to stdout. Either way it ends when the container's side of the pty closes.
It is as much a check of the protocol as a tool: any other message is an error.

    ocirt-console-receiver --pid-file r.pid /tmp/tty.sock &
    ocirt run -d --console-socket /tmp/tty.sock ID
"""

from __future__ import annotations

import argparse
import codecs
import os
import select
import socket
import stat
import sys
import time
from collections.abc import Sequence
from typing import Any

from ocirt.runtime.console import MASTER_NAME, proxy, recv_fd
from ocirt.runtime.errors import OcirtError

PROG = "ocirt-console-receiver"


class _Step(argparse.Action):
    """Keeps ``--send`` and ``--expect`` in one list, in command-line order."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any, option: Any = None
    ) -> None:
        ns.steps.append((self.dest, codecs.escape_decode(value.encode())[0].decode()))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("socket", help="path of the unix socket to listen on (made, then removed)")
    parser.add_argument("--pid-file", help="written once the socket listens, so a caller can wait for it")
    parser.add_argument(
        "--send", action=_Step, default=argparse.SUPPRESS, metavar="TEXT", help=r"write TEXT (\n escapes)"
    )
    parser.add_argument(
        "--expect", action=_Step, default=argparse.SUPPRESS, metavar="TEXT", help="wait until TEXT is read"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for each step and for hangup")
    parser.set_defaults(steps=[])
    return parser.parse_args(argv)


def listen(path: str) -> socket.socket:
    """A stale socket left by a previous run is replaced; any other file is not touched."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        server.listen(1)
    except OSError as exc:
        server.close()
        raise OcirtError(f"{path}: {exc.strerror or exc}") from None
    return server


def receive(server: socket.socket, path: str, timeout: float) -> int:
    server.settimeout(timeout)
    try:
        conn, _ = server.accept()
    except TimeoutError:
        raise OcirtError(f"{path}: no runtime connected within {timeout:g} s") from None
    finally:
        server.close()
        os.unlink(path)
    with conn:
        conn.settimeout(timeout)
        try:
            fd, name = recv_fd(conn)
        except TimeoutError:
            raise OcirtError(f"{path}: no terminal received within {timeout:g} s") from None
    if name.encode() != MASTER_NAME:
        os.close(fd)
        raise OcirtError(f"unexpected console message {name!r} (wanted {MASTER_NAME.decode()!r})")
    return fd


class Session:
    """A scripted conversation with the container's terminal; all it reads is echoed out."""

    def __init__(self, master: int, timeout: float) -> None:
        self.master = master
        self.timeout = timeout
        self.unmatched = b""
        self.open = True
        os.set_blocking(master, False)

    def send(self, text: str) -> None:
        data = text.encode()
        while data:
            if not select.select([], [self.master], [], self.timeout)[1]:
                raise OcirtError(f"terminal took no input for {self.timeout:g} s")
            try:
                data = data[os.write(self.master, data) :]
            except BlockingIOError:
                continue

    def expect(self, text: str) -> None:
        """Text already read but not yet matched counts; a match consumes up to its end."""
        want = text.encode()
        deadline = time.monotonic() + self.timeout
        while want not in self.unmatched:
            if not self.open:
                raise OcirtError(f"terminal closed before {text!r} was seen")
            if not self._read(deadline):
                raise OcirtError(f"{text!r} not seen within {self.timeout:g} s")
        self.unmatched = self.unmatched[self.unmatched.index(want) + len(want) :]

    def wait_hangup(self) -> None:
        deadline = time.monotonic() + self.timeout
        while self.open:
            if not self._read(deadline):
                raise OcirtError(f"terminal still open after {self.timeout:g} s")

    def _read(self, deadline: float) -> bool:
        """One read; False when the deadline passed first."""
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.master], [], [], left)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return True
        except OSError:  # EIO: every slave fd is closed and all output was read
            data = b""
        self.open = bool(data)
        self.unmatched += data
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return True


def run(args: argparse.Namespace) -> None:
    server = listen(args.socket)
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(str(os.getpid()))
    master = receive(server, args.socket, args.timeout)
    try:
        if not args.steps:
            proxy(master)
            return
        session = Session(master, args.timeout)
        for kind, text in args.steps:
            getattr(session, kind)(text)
        session.wait_hangup()
    finally:
        os.close(master)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except OcirtError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
