"""``process.terminal``: the console socket protocol, the pty inside the container, and
``ocirt run`` in the foreground proxying its own terminal. Real containers, real ptys: the
test plays conmon's part (it listens, takes the master and talks to the shell through it)
or, for ``run``, the user's terminal (an ``os.openpty`` pair)."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """Short: a unix socket path must fit in 108 bytes, pytest's tmp_path may not."""
    path = tempfile.mkdtemp(prefix="ocirt-tty-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def listener(sock_dir: str) -> Iterator[tuple[str, socket.socket]]:
    path = os.path.join(sock_dir, "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(10)
    try:
        yield path, server
    finally:
        server.close()


@pytest.fixture
def fds() -> Iterator[list[int]]:
    """File descriptors a test opened, closed whatever happens."""
    opened: list[int] = []
    try:
        yield opened
    finally:
        for fd in opened:
            os.close(fd)


def terminal_bundle(rt: Runtime, args: list[str], edit: Edit | None = None) -> str:
    def setup(config: dict[str, Any]) -> None:
        config["process"]["terminal"] = True
        if edit is not None:
            edit(config)

    return rt.bundle(args, setup)


def receive_master(server: socket.socket) -> int:
    """Read the message as conmon does, independently of ocirt's own code: one SCM_RIGHTS
    descriptor, and the master's name as the data."""
    conn, _ = server.accept()
    with conn:
        conn.settimeout(10)
        name, ancdata, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
    assert name == b"/dev/ptmx"
    assert not flags & socket.MSG_CTRUNC
    assert len(ancdata) == 1
    level, kind, data = ancdata[0]
    assert (level, kind, len(data)) == (socket.SOL_SOCKET, socket.SCM_RIGHTS, 4)
    fd: int = struct.unpack("i", data)[0]
    assert os.isatty(fd)
    return fd


def read_until_hangup(fd: int, timeout: float = 20) -> str:
    """Everything the container writes, until its side of the pty is closed (EIO)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError as exc:
            assert exc.errno == errno.EIO
            return out.decode(errors="replace")
        if not data:
            break
        out += data
    raise AssertionError(f"terminal still open after {timeout} s: {out!r}")


def wait_status(rt: Runtime, cid: str, status: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        current = str(rt.state(cid)["status"])
        if current == status or time.monotonic() > deadline:
            return current
        time.sleep(0.02)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_console_socket_session(rt: Runtime, listener: tuple[str, socket.socket], fds: list[int]) -> None:
    """create sends the master; the shell on it runs what is typed, sized by consoleSize,
    on the container's own /dev/pts/0, also bound over /dev/console."""
    path, server = listener
    bundle = terminal_bundle(
        rt, ["sh"], lambda c: c["process"].update(consoleSize={"height": 30, "width": 100})
    )
    cid = rt.new_id()
    res = rt("create", "--bundle", bundle, "--console-socket", path, cid)
    assert res.returncode == 0, res.stderr
    master = receive_master(server)
    fds.append(master)
    assert rt.state(cid)["status"] == "created"
    assert rt("start", cid).returncode == 0
    script = "stty size; tty; [ /dev/console -ef $(tty) ] && echo console-is-tty; echo hel''lo; exit 3\n"
    os.write(master, script.encode())
    out = read_until_hangup(master)
    assert "\r\n30 100\r\n" in out
    assert "\r\n/dev/pts/0\r\n" in out
    assert "\r\nconsole-is-tty\r\n" in out
    assert "\r\nhello\r\n" in out
    assert wait_status(rt, cid, "stopped") == "stopped"


def test_create_with_stdin_closed(rt: Runtime, listener: tuple[str, socket.socket], fds: list[int]) -> None:
    """A caller's closed fd 0 must not let ocirt's own descriptors sit where init puts the pty:
    the exec fifo lost there would let the program run before ``start``."""
    path, server = listener
    bundle = terminal_bundle(rt, ["sh", "-c", "echo started"])
    cid = rt.new_id()
    argv = [OCIRT, "--root", rt.root, "create", "--bundle", bundle, "--console-socket", path, cid]
    res = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" <&-', *argv], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    master = receive_master(server)
    fds.append(master)
    time.sleep(0.2)
    assert rt.state(cid)["status"] == "created"
    assert rt("start", cid).returncode == 0
    assert read_until_hangup(master) == "started\r\n"


def test_terminal_is_controlling_and_owned_by_user(
    rt: Runtime, listener: tuple[str, socket.socket], fds: list[int]
) -> None:
    """Writing to /dev/tty needs a controlling terminal; the user owns the pty, as in runc."""
    path, server = listener
    script = "echo via-dev-tty > /dev/tty; echo owner=$(stat -c %u $(tty)) uid=$(id -u)"
    bundle = terminal_bundle(
        rt, ["sh", "-c", script], lambda c: c["process"].update(user={"uid": 1000, "gid": 1000})
    )
    cid = rt.new_id()
    res = rt("run", "--detach", "--bundle", bundle, "--console-socket", path, cid)
    assert res.returncode == 0, res.stderr
    master = receive_master(server)
    fds.append(master)
    out = read_until_hangup(master)
    assert "via-dev-tty\r\n" in out
    assert "owner=1000 uid=1000\r\n" in out


def test_terminal_in_user_namespace(
    rt: Runtime, sock_dir: str, listener: tuple[str, socket.socket], fds: list[int]
) -> None:
    """devpts of a user namespace: the pty is the container's, its owner the mapped user."""
    path, server = listener
    os.chmod(sock_dir, 0o755)  # the rootfs must be reachable by the mapped host uid

    def edit(c: dict[str, Any]) -> None:
        c["process"].update(terminal=True, user={"uid": 1000, "gid": 1000})
        c["linux"]["namespaces"].append({"type": "user"})
        for key in ("uidMappings", "gidMappings"):
            c["linux"][key] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    script = "echo via-dev-tty > /dev/tty; stat -c 'owner=%u %t:%T' $(tty) /dev/console"
    bundle = rt.bundle(["sh", "-c", script], edit, name=os.path.join(sock_dir, "bundle"))
    cid = rt.new_id()
    res = rt("run", "--detach", "--bundle", bundle, "--console-socket", path, cid)
    assert res.returncode == 0, res.stderr
    master = receive_master(server)
    fds.append(master)
    out = read_until_hangup(master)
    assert out.split("\r\n") == ["via-dev-tty", "owner=1000 88:0", "owner=1000 88:0", ""]
    assert wait_status(rt, cid, "stopped") == "stopped"
    rt("delete", cid)
    with open("/proc/self/mountinfo") as f:
        assert sock_dir not in f.read()


@pytest.mark.parametrize(
    ("command", "terminal", "with_socket", "expected"),
    [
        ("create", True, False, "cannot allocate tty if ocirt will detach without setting console socket"),
        (
            "run --detach",
            True,
            False,
            "cannot allocate tty if ocirt will detach without setting console socket",
        ),
        ("create", False, True, "cannot use console socket if ocirt will not detach or allocate tty"),
        ("run --detach", False, True, "cannot use console socket if ocirt will not detach or allocate tty"),
        ("run", True, True, "cannot use console socket if ocirt will not detach or allocate tty"),
    ],
)
def test_console_socket_rules(
    rt: Runtime,
    listener: tuple[str, socket.socket],
    command: str,
    terminal: bool,
    with_socket: bool,
    expected: str,
) -> None:
    path, server = listener
    bundle = rt.bundle(["true"], lambda c: c["process"].update(terminal=terminal))
    cid = rt.new_id()
    flags = ["--console-socket", path] if with_socket else []
    res = rt(*command.split(), "--bundle", bundle, *flags, cid)
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocirt: "), res.stderr
    assert expected in lines[0]
    assert not os.path.exists(os.path.join(rt.root, cid))
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.accept()


def test_console_socket_missing(rt: Runtime, sock_dir: str) -> None:
    bundle = terminal_bundle(rt, ["true"])
    cid = rt.new_id()
    path = os.path.join(sock_dir, "nobody-listens")
    res = rt("create", "--bundle", bundle, "--console-socket", path, cid)
    assert res.returncode == 1
    assert res.stderr == f"ocirt: --console-socket {path}: connect: No such file or directory\n"
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_terminal_needs_devpts(rt: Runtime, listener: tuple[str, socket.socket]) -> None:
    path, _ = listener

    def no_devpts(config: dict[str, Any]) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["type"] != "devpts"]

    bundle = terminal_bundle(rt, ["true"], no_devpts)
    cid = rt.new_id()
    res = rt("create", "--bundle", bundle, "--console-socket", path, cid)
    assert res.returncode == 1
    assert "config.json: process.terminal: open /dev/ptmx: No such file or directory" in res.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_console_receiver_end_to_end(rt: Runtime, sock_dir: str) -> None:
    """The receiver utility plays a scripted session with a detached container."""
    path = os.path.join(sock_dir, "recv.sock")
    pid_file = os.path.join(sock_dir, "recv.pid")
    script = ["--expect", "# ", "--send", r"echo hi-$((2+3)); exit 5\n", "--expect", "hi-5"]
    receiver = subprocess.Popen(
        [sys.executable, "-m", "ocirt.runtime.console_receiver", "--pid-file", pid_file, *script, path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(pid_file):
            assert receiver.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        bundle = terminal_bundle(rt, ["sh"])
        cid = rt.new_id()
        res = rt("run", "-d", "--bundle", bundle, "--console-socket", path, cid)
        assert res.returncode == 0, res.stderr
        out, err = receiver.communicate(timeout=30)
        assert receiver.returncode == 0, err
        assert b"\r\nhi-5\r\n" in out
        assert not os.path.exists(path)
        assert wait_status(rt, cid, "stopped") == "stopped"
    finally:
        if receiver.poll() is None:
            receiver.kill()
        receiver.communicate()


class OuterTerminal:
    """The user's terminal for ``ocirt run``: the test holds the master side."""

    def __init__(self, fds: list[int], rows: int = 40, cols: int = 120) -> None:
        self.master, self.slave = os.openpty()
        fds += [self.master, self.slave]
        set_winsize(self.master, rows, cols)
        self.out = b""

    def run(self, rt: Runtime, bundle: str) -> subprocess.Popen[bytes]:
        """A session of its own: the test's terminal stays out of it."""
        argv = [OCIRT, "--root", rt.root, "run", "--bundle", bundle, rt.new_id()]
        s = self.slave
        return subprocess.Popen(argv, stdin=s, stdout=s, stderr=s, start_new_session=True)

    def read_until(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            assert time.monotonic() < deadline, self.out
            self.read(0.1)

    def read(self, wait: float) -> bool:
        if not select.select([self.master], [], [], wait)[0]:
            return False
        self.out += os.read(self.master, 4096)
        return True

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            assert time.monotonic() < deadline, self.out
            self.read(0.05)
        while self.read(0.1):
            pass
        return proc.returncode


@pytest.fixture
def reap() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_foreground_run_proxies_terminal(rt: Runtime, fds: list[int], reap: list[Any]) -> None:
    """ocirt run with a terminal and no console socket: it takes the master itself, sizes
    it like its own terminal, exits with the container's status and restores its terminal."""
    outer = OuterTerminal(fds, 40, 120)
    before = termios.tcgetattr(outer.slave)
    proc = outer.run(rt, terminal_bundle(rt, ["sh"]))
    reap.append(proc)
    outer.read_until("# ")
    assert termios.tcgetattr(outer.slave)[3] & termios.ECHO == 0  # raw while it runs
    os.write(outer.master, b"stty size; echo hel''lo; exit 3\n")
    assert outer.finish(proc) == 3
    assert b"\r\n40 120\r\n" in outer.out
    assert b"\r\nhello\r\n" in outer.out
    assert termios.tcgetattr(outer.slave) == before


def test_foreground_run_follows_window_size(rt: Runtime, fds: list[int], reap: list[Any]) -> None:
    outer = OuterTerminal(fds, 40, 120)
    proc = outer.run(rt, terminal_bundle(rt, ["sh"]))
    reap.append(proc)
    outer.read_until("# ")
    set_winsize(outer.master, 50, 132)
    proc.send_signal(signal.SIGWINCH)  # not its controlling terminal: the kernel will not
    deadline = time.monotonic() + 10
    while b"\r\n50 132\r\n" not in outer.out:
        assert time.monotonic() < deadline, outer.out
        os.write(outer.master, b"stty size\n")
        outer.read(0.2)
    os.write(outer.master, b"exit 0\n")
    assert outer.finish(proc) == 0


def test_foreground_run_with_piped_stdin(rt: Runtime) -> None:
    """Without a terminal on ocirt's side nothing goes raw; input still reaches the pty."""
    bundle = terminal_bundle(rt, ["sh"])
    res = rt("run", "--bundle", bundle, rt.new_id(), input="echo pip''ed; tty; exit 4\n")
    assert res.returncode == 4, res.stderr
    assert "\npiped\n" in res.stdout  # the fixture reads text: \r\n arrives as \n
    assert "\n/dev/pts/0\n" in res.stdout
