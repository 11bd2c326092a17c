"""Log drivers that send each line away instead of keeping a file: ``syslog`` for now.

The shim keeps its import diet (docs/architecture.md): ``_socket``, never ``socket``. A
line is what docker's loggers get: the text without its newline, stderr apart from stdout,
a partial line sent once it reaches docker's 16 KiB buffer or the stream ends. A receiver
that cannot be reached when the container starts fails the start, as docker's "failed to
initialize logging driver"; a send that fails later drops the line, never the container.
"""

from __future__ import annotations

import _socket
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_LINE = 16 * 1024  # docker's logger buffer: a longer line goes out in pieces

_NAMED = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
)
# syslog's facility numbers; local0..local7 are 16..23
FACILITIES = {name: n for n, name in enumerate(_NAMED)} | {f"local{i}": 16 + i for i in range(8)}
SYSLOG_FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
SYSLOG_SCHEMES = ("udp", "tcp", "unix", "unixgram")
SYSLOG_OPTIONS = ("syslog-address", "syslog-facility", "syslog-format", "tag", "labels", "env")
_SEVERITY = {"stdout": 6, "stderr": 3}  # docker: Info for stdout, Err for stderr


class LogOptionError(Exception):
    """A ``--log-opt`` the driver cannot use; the text names it."""


def split_address(text: str, default_port: int) -> tuple[str, str, int]:
    """``scheme://host:port`` or ``unix[gram]:///path`` as ``(scheme, host or path, port)``."""
    scheme, sep, rest = text.partition("://")
    if not sep or not rest:
        raise LogOptionError(f"syslog-address: {text!r}: expected scheme://address")
    if scheme in ("unix", "unixgram"):
        if not rest.startswith("/"):
            raise LogOptionError(f"syslog-address: {text!r}: a unix address is an absolute path")
        return scheme, rest, 0
    host, colon, port = rest.rpartition(":")
    if not colon:
        host, port = rest, str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LogOptionError(f"syslog-address: {text!r}: expected host:port, port 1 to 65535")
    return scheme, host.strip("[]"), int(port)


def check_syslog_option(key: str, value: str) -> None:
    """One ``--log-opt`` of ``syslog``, refused as docker's ``ValidateLogOpt`` refuses it."""
    if key == "syslog-address":
        scheme = split_address(value, 514)[0]
        if scheme not in SYSLOG_SCHEMES:
            raise LogOptionError(
                f"syslog-address: unsupported scheme {scheme!r} ({', '.join(SYSLOG_SCHEMES)})"
            )
    elif key == "syslog-facility" and value not in FACILITIES:
        raise LogOptionError(f"syslog-facility: invalid facility {value!r}")
    elif key == "syslog-format" and value not in SYSLOG_FORMATS:
        raise LogOptionError(f"syslog-format: invalid format {value!r} (rfc3164, rfc5424, rfc5424micro)")


def connect(scheme: str, host: str, port: int) -> _socket.socket:
    if scheme in ("unix", "unixgram"):
        kind = _socket.SOCK_STREAM if scheme == "unix" else _socket.SOCK_DGRAM
        sock = _socket.socket(_socket.AF_UNIX, kind | _socket.SOCK_CLOEXEC)
        target: str | tuple[object, ...] = host
    else:
        kind = _socket.SOCK_STREAM if scheme == "tcp" else _socket.SOCK_DGRAM
        family, _, _, _, target = _socket.getaddrinfo(host, port, 0, kind)[0]
        sock = _socket.socket(family, kind | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(5.0)
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


def _stamp(fmt: str) -> str:
    """Local time as Go's ``time.Stamp`` (rfc3164 and docker's default), RFC 3339, or RFC
    3339 with microseconds (``rfc5424micro``)."""
    now = time.time_ns()
    t = time.localtime(now // 1_000_000_000)
    if fmt in ("", "rfc3164"):
        return time.strftime("%b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S", t)
    zone = time.strftime("%z", t)
    zone = "Z" if zone == "+0000" else f"{zone[:3]}:{zone[3:]}"
    micro = f".{now // 1000 % 1_000_000:06d}" if fmt == "rfc5424micro" else ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + micro + zone


class Syslog:
    """docker's ``syslog`` driver: docker's default format (``<PRI>Stamp tag[pid]: msg``),
    ``rfc3164`` (with the host name) or ``rfc5424``/``rfc5424micro`` (app-name and msgid both
    the tag), one message per datagram or newline-ended on a stream."""

    def __init__(self, options: dict[str, str], info: dict[str, str]) -> None:
        for key, value in options.items():
            check_syslog_option(key, value)
        scheme, host, port = split_address(options.get("syslog-address", "unixgram:///dev/log"), 514)
        self.facility = FACILITIES[options.get("syslog-facility", "daemon")]
        self.format = options.get("syslog-format", "")
        self.tag = options.get("tag") or info["id"][:12]
        self.host = _socket.gethostname()
        self.pid = os.getpid()
        self.sock = connect(scheme, host, port)

    def send(self, stream: str, text: bytes, partial: bool) -> None:
        pri = self.facility * 8 + _SEVERITY[stream]
        stamp = _stamp(self.format)
        if self.format in ("rfc5424", "rfc5424micro"):
            head = f"<{pri}>1 {stamp} {self.host} {self.tag} {self.pid} {self.tag} - "
        elif self.format == "rfc3164":
            head = f"<{pri}>{stamp} {self.host} {self.tag}[{self.pid}]: "
        else:
            head = f"<{pri}>{stamp} {self.tag}[{self.pid}]: "
        try:
            self.sock.sendall(head.encode() + text + b"\n")
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


class LineSink:
    """Output cut into docker's log lines for a sender such as ``Syslog``."""

    def __init__(self, send: Callable[[str, bytes, bool], None], close: Callable[[], None]) -> None:
        self.send = send
        self.finish = close
        self.pending: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.pending.pop(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        for line in lines:
            self.send(stream, line, False)
        while len(rest) >= MAX_LINE:
            self.send(stream, rest[:MAX_LINE], True)
            rest = rest[MAX_LINE:]
        if rest:
            self.pending[stream] = rest

    def close(self) -> None:
        for stream, rest in self.pending.items():
            self.send(stream, rest, True)
        self.pending.clear()
        self.finish()


def open_syslog(options: dict[str, str], info: dict[str, str]) -> LineSink:
    sender = Syslog(options, info)
    return LineSink(sender.send, sender.close)
