"""Terminals for ``process.terminal``: the pty, the console socket, ``ocirt run``'s proxy.

The pty is allocated by the container's init from the container's own devpts instance
(``/dev/ptmx`` after pivot_root), so its number, owner and mode belong to the container and
not to the host (runc#814). The master travels over the ``--console-socket`` as one
SCM_RIGHTS message whose payload is the master's name, ``/dev/ptmx``: what runc's
``utils.SendRawFd`` sends and what conmon, containerd and runc's ``recvtty`` read. The slave
becomes init's stdin, stdout, stderr and controlling terminal, and is bound over
``/dev/console``.

Init imports this module before pivot_root, so everything it uses is imported here at the
top; after pivot_root the host's Python library is out of sight.
"""

from __future__ import annotations

import _signal
import _socket
import errno
import fcntl
import os
import select
import stat
import struct

from ocirt.runtime import syscalls
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.specs.config import Process

MASTER_NAME = b"/dev/ptmx"
MAX_NAME = 4096  # runc's utils.MaxNameLen: a longer payload is not a console message
_CHUNK = 65536
_DRAIN_IDLE_MS = 100
_FIELD = "process.terminal"


def check_request(proc: Process | None, socket_path: str | None, detach: bool) -> None:
    """runc's rules: a detached terminal needs somewhere to send its master, and a console
    socket is only for a detached terminal (``run`` in the foreground makes its own)."""
    terminal = proc is not None and proc.terminal
    if terminal and detach and not socket_path:
        raise OcirtError(
            "cannot allocate tty if ocirt will detach without setting console socket "
            "(process.terminal is true: pass --console-socket)"
        )
    if socket_path and not terminal:
        raise OcirtError(
            "cannot use console socket if ocirt will not detach or allocate tty (process.terminal is false)"
        )
    if socket_path and not detach:
        raise OcirtError(
            "cannot use console socket if ocirt will not detach or allocate tty "
            "(ocirt run without --detach uses its own terminal)"
        )
    if terminal and proc is not None and proc.console_size is not None:
        for name, value in zip(("height", "width"), proc.console_size, strict=True):
            if not 0 <= value <= 0xFFFF:
                raise SpecError(f"process.consoleSize.{name}", f"{value} is out of range 0..65535")


class OwnConsole:
    """``ocirt run`` in the foreground: the console socket is a socketpair of its own, and
    the master comes back to ocirt, which proxies it to its stdio."""

    __slots__ = ("ours",)

    def __init__(self) -> None:
        self.ours: _socket.socket | None = None

    def open(self) -> _socket.socket:
        """The end init sends the master to; the caller closes it once init has it."""
        self.ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        return theirs

    def receive(self) -> int | None:
        """The master, or None when the container has no terminal."""
        if self.ours is None:
            return None
        try:
            return recv_fd(self.ours)[0]
        finally:
            self.close()

    def close(self) -> None:
        if self.ours is not None:
            self.ours.close()
            self.ours = None


def reserve_stdio() -> None:
    """Init makes the pty its fds 0, 1 and 2. Started with one of them closed, ocirt could
    put a descriptor init still needs there (the exec fifo, the sync socket), and lose it
    to the pty: /dev/null keeps the place."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one


def socket_for(
    proc: Process | None, socket_path: str | None, own: OwnConsole | None
) -> _socket.socket | None:
    """The socket init sends the master over, connected here because the path is the host's."""
    if proc is None or not proc.terminal:
        return None
    if socket_path:
        return connect(socket_path)
    return own.open() if own is not None else None


def connect(path: str) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise OcirtError(f"--console-socket {path}: connect: {exc.strerror or exc}") from None
    return sock


def send_fd(sock: _socket.socket, fd: int, name: bytes) -> None:
    """One message: ``name`` as the data, ``fd`` as its only SCM_RIGHTS descriptor."""
    sock.sendmsg([name], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))])


def recv_fd(sock: _socket.socket) -> tuple[int, str]:
    """The descriptor and name of one ``send_fd`` message (as runc's ``utils.RecvFile``)."""
    name, ancdata, flags, _ = sock.recvmsg(MAX_NAME, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            count = len(data) // 4
            fds += struct.unpack(f"{count}i", data[: count * 4])
    if len(fds) != 1 or flags & _socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        if not name and not fds:
            raise OcirtError("console socket: closed before a terminal was sent")
        raise OcirtError(f"console socket: expected one file descriptor, got {len(fds)}")
    return fds[0], name.decode(errors="replace")


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, syscalls.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def copy_size(src: int, dst: int) -> None:
    """Best effort, as runc's resize: ``src`` may have stopped being a terminal."""
    try:
        fcntl.ioctl(dst, syscalls.TIOCSWINSZ, fcntl.ioctl(src, syscalls.TIOCGWINSZ, bytes(8)))
    except OSError:
        pass


# --- in the container's init, after pivot_root and before the user switch ---------------


def setup(sock: _socket.socket, proc: Process, bind_console: bool = True) -> None:
    """Give init a new pty of the container's devpts as its stdio and controlling terminal,
    after sending the master over ``sock``; init keeps no copy of the master, so the
    container sees a hangup when the receiver closes it. ``exec``'s process does the same
    without the bind over ``/dev/console``, which stays init's (as in runc)."""
    try:
        master = _open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            slave_path = _unlock(master)
            slave = above_stdio(_open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
            size = proc.console_size
            if size is not None and size[0] and size[1]:
                set_size(master, *size)
            _chown_slave(slave, slave_path, proc.user.uid)
            if bind_console:
                _bind_console(slave_path)
            _send_master(sock, master)
        finally:
            os.close(master)
    finally:
        sock.close()
    _make_controlling(slave, slave_path)


def above_stdio(fd: int) -> int:
    """``fd`` moved out of 0 to 2 (stdio slots a caller left closed), close-on-exec: the
    pty's slave is dup'ed onto them later and must not be closed with one."""
    if fd >= 3:
        return fd
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags)
    except OSError as exc:
        hint = " (a devpts mount at /dev/pts is needed)" if path == "/dev/ptmx" else ""
        raise SpecError(_FIELD, f"open {path}: {exc.strerror}{hint}") from None


def _unlock(master: int) -> str:
    """unlockpt(3) and ptsname(3) by their ioctls; the number is in the container's devpts."""
    try:
        fcntl.ioctl(master, syscalls.TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, syscalls.TIOCGPTN, bytes(4)))[0]
    except OSError as exc:
        raise SpecError(_FIELD, f"unlock the pty of /dev/ptmx: {exc.strerror}") from None
    return f"/dev/pts/{number}"


def _chown_slave(slave: int, path: str, uid: int) -> None:
    """As runc, the process's user owns its terminal (the group stays devpts' ``gid=``), so
    it can reopen it as ``/dev/tty``."""
    try:
        os.fchown(slave, uid, -1)
    except OSError as exc:
        raise SpecError(_FIELD, f"chown {path} to uid {uid}: {exc.strerror}") from None


def _bind_console(slave_path: str) -> None:
    """runc binds the slave over ``/dev/console``, made as an empty file if missing. No
    container process runs yet, but the image may have left a symlink there: refused."""
    target = "/dev/console"
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        os.fchmod(fd, 0o666)
        os.close(fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SpecError(_FIELD, f"create {target}: {exc.strerror}") from None
    if stat.S_ISLNK(os.lstat(target).st_mode):
        raise SpecError(_FIELD, f"{target} is a symbolic link in the rootfs: cannot bind the terminal there")
    try:
        syscalls.mount(slave_path, target, None, syscalls.MS_BIND)
    except OSError as exc:
        raise SpecError(_FIELD, f"bind {slave_path} on {target}: {exc.strerror}") from None


def _send_master(sock: _socket.socket, master: int) -> None:
    try:
        send_fd(sock, master, MASTER_NAME)
    except OSError as exc:
        raise OcirtError(f"--console-socket: send the terminal: {exc.strerror}") from None


def _make_controlling(slave: int, path: str) -> None:
    """A new session, so the pty can become its controlling terminal (TIOCSCTTY)."""
    try:
        os.setsid()
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        fcntl.ioctl(0, syscalls.TIOCSCTTY, 0)
    except OSError as exc:
        raise SpecError(_FIELD, f"make {path} the controlling terminal: {exc.strerror}") from None
    finally:
        os.close(slave)


# --- on the host: ocirt run in the foreground, ocirt-console-receiver ---------------------


def proxy(master: int, pid: int | None = None) -> None:
    """Our own terminal (when stdin is one) goes raw and the container's pty follows its
    size, so the container's line discipline alone echoes and edits. Ends as ``pump``:
    when ``pid`` has exited and its output is drained, or without it at hangup."""
    import termios
    import tty

    pidfd = -1 if pid is None else os.pidfd_open(pid)
    saved = termios.tcgetattr(0) if os.isatty(0) else None
    previous = _signal.signal(_signal.SIGWINCH, lambda _n, _f: copy_size(0, master))
    try:
        if saved is not None:
            copy_size(0, master)
            tty.setraw(0, termios.TCSANOW)
        pump(master, pidfd)
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        _signal.signal(_signal.SIGWINCH, previous)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def pump(master: int, pidfd: int = -1, stdin: int = 0, stdout: int = 1) -> None:
    """Copy ``stdin`` to the master and the master to ``stdout``. Without ``pidfd`` it ends
    when the container's side of the pty is closed; with it, once that process has exited
    and the output it left is drained. Writes to the master never block, so a container
    that does not read cannot stop its output from reaching us."""
    os.set_blocking(master, False)
    pending = bytearray()
    stdin_open = master_open = True
    while master_open or pidfd >= 0:
        poller = select.poll()
        if stdin_open and master_open and len(pending) < _CHUNK:
            poller.register(stdin, select.POLLIN)
        if master_open:
            poller.register(master, select.POLLIN | (select.POLLOUT if pending else 0))
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        for fd, events in poller.poll():
            if fd == pidfd:
                if master_open:
                    _drain(master, stdout)
                return
            if fd == stdin:
                data = b"" if events & select.POLLNVAL else _read(stdin)  # POLLNVAL: stdin closed
                stdin_open = data != b""
                pending += data or b""
            elif events & select.POLLOUT and pending:
                master_open = _write_master(master, pending)
            elif events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                master_open = _copy_out(master, stdout)


def _read(fd: int) -> bytes | None:
    """Data; b"" at the end of input (a terminal that hung up reads as EIO); None for
    nothing yet."""
    try:
        return os.read(fd, _CHUNK)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


def _write_master(master: int, pending: bytearray) -> bool:
    """Write what the master takes now; False once the container's side is gone."""
    try:
        del pending[: os.write(master, pending)]
    except BlockingIOError:
        pass
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
        return False
    return True


def _copy_out(master: int, stdout: int) -> bool:
    data = _read(master)
    if data:
        _write_all(stdout, data)
    return data != b""


def _drain(master: int, stdout: int) -> None:
    """What the exited container wrote is still in the pty; read until its side is closed
    and empty (EIO), or until it stays quiet, for a process left holding it."""
    poller = select.poll()
    poller.register(master, select.POLLIN)
    while poller.poll(_DRAIN_IDLE_MS):
        if not _copy_out(master, stdout):
            return


def _write_all(fd: int, data: bytes) -> None:
    """A reader that went away only loses the output; the container is not disturbed."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        pass
