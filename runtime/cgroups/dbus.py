"""The little of D-Bus that ``--systemd-cgroup`` needs: method calls to systemd's manager.

The connection is systemd's private socket (``/run/systemd/private``), which ``systemctl``
also uses as root: a direct peer-to-peer connection to the manager, no bus daemon, no
``Hello``. ``BEGIN`` goes with ``AUTH``, as sd-bus sends it: systemd 252 leaves a first
message that arrives in the same read as a late ``BEGIN`` unread until the next wake-up.
Messages are little-endian, in the wire format of the D-Bus specification; only the types
that the calls here take or return are encoded (``y b u t s o g a ( ) v``), and a reply is
read as far as the caller asks.
"""

from __future__ import annotations

import os

from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

METHOD_CALL, METHOD_RETURN, ERROR = 1, 2, 3
HEADER_PATH, HEADER_INTERFACE, HEADER_MEMBER, HEADER_ERROR_NAME = 1, 2, 3, 4
HEADER_REPLY_SERIAL, HEADER_DESTINATION, HEADER_SIGNATURE = 5, 6, 8
ALIGN = {"y": 1, "g": 1, "v": 1, "b": 4, "u": 4, "s": 4, "o": 4, "a": 4, "t": 8, "(": 8}
TIMEOUT = 25.0  # systemd's own default for method calls


class DBusError(OcirtError):
    """An error reply: ``name`` is the D-Bus error name (``org.freedesktop.systemd1.NoSuchUnit``)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class Writer:
    """Values appended in wire format; offsets count from the start of the body or header,
    both of which begin 8-aligned in a message."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def align(self, n: int) -> None:
        self.buf += bytes(-len(self.buf) % n)

    def value(self, sig: str, value: Any) -> None:
        """One complete type ``sig`` (a struct is a tuple, an array a list)."""
        kind = sig[0]
        self.align(ALIGN[kind])
        if kind == "y":
            self.buf.append(value)
        elif kind in "bu":
            self.buf += int(value).to_bytes(4, "little")
        elif kind == "t":
            self.buf += value.to_bytes(8, "little")
        elif kind in "so":
            raw = value.encode()
            self.buf += len(raw).to_bytes(4, "little") + raw + b"\0"
        elif kind == "g":
            self.buf += bytes((len(value),)) + value.encode() + b"\0"
        elif kind == "v":
            self.value("g", value[0])
            self.value(value[0], value[1])
        elif kind == "(":
            for part, item in zip(split(sig[1:-1]), value, strict=True):
                self.value(part, item)
        else:
            self._array(sig[1:], value)

    def _array(self, item_sig: str, items: list[Any]) -> None:
        at = len(self.buf)
        self.buf += bytes(4)
        self.align(ALIGN[item_sig[0]])
        start = len(self.buf)
        for item in items:
            self.value(item_sig, item)
        self.buf[at : at + 4] = (len(self.buf) - start).to_bytes(4, "little")


def split(sig: str) -> list[str]:
    """``sa(sv)u`` -> ``["s", "a(sv)", "u"]``: the complete types of a signature."""
    out = []
    i = 0
    while i < len(sig):
        end = i
        while sig[end] == "a":
            end += 1
        if sig[end] == "(":
            depth = 0
            while True:
                depth += {"(": 1, ")": -1}.get(sig[end], 0)
                if depth == 0:
                    break
                end += 1
        out.append(sig[i : end + 1])
        i = end + 1
    return out


class Reader:
    """Reads the basic types of a received message; ``pos`` counts from the message start."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def value(self, kind: str) -> Any:
        self.pos += -self.pos % ALIGN[kind]
        if kind == "y":
            self.pos += 1
            return self.data[self.pos - 1]
        if kind in "bu":
            self.pos += 4
            return int.from_bytes(self.data[self.pos - 4 : self.pos], "little")
        if kind in "so":
            size = self.value("u")
            self.pos += size + 1
            return self.data[self.pos - size - 1 : self.pos - 1].decode()
        if kind == "g":
            size = self.value("y")
            self.pos += size + 1
            return self.data[self.pos - size - 1 : self.pos - 1].decode()
        if kind == "v":
            return self.value(self.value("g"))
        raise OcirtError(f"D-Bus: cannot read a value of type {kind!r} from systemd")


class Connection:
    """One authenticated connection; ``call`` waits for the reply to its own serial."""

    def __init__(self, path: str) -> None:
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(TIMEOUT)
        self.serial = 0
        self.pending = b""
        try:
            self.sock.connect(path)
            uid = str(os.geteuid()).encode().hex()
            self.sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\nBEGIN\r\n")
            answer = self._line()
            if not answer.startswith(b"OK "):
                raise OcirtError(
                    f"D-Bus: {path} refused EXTERNAL authentication: {answer.decode(errors='replace')}"
                )
        except OSError as exc:
            self.sock.close()
            raise OcirtError(f"D-Bus: connecting to {path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.sock.close()

    def call(
        self, path: str, interface: str, member: str, sig: str = "", args: tuple[Any, ...] = ()
    ) -> Reader:
        """The reply body, positioned at its first value; an error reply raises DBusError."""
        body = Writer()
        for part, arg in zip(split(sig), args, strict=True):
            body.value(part, arg)
        self.serial += 1
        fields: list[tuple[int, tuple[str, str]]] = [
            (HEADER_PATH, ("o", path)),
            (HEADER_INTERFACE, ("s", interface)),
            (HEADER_MEMBER, ("s", member)),
            (HEADER_DESTINATION, ("s", "org.freedesktop.systemd1")),
        ]
        if sig:
            fields.append((HEADER_SIGNATURE, ("g", sig)))
        header = Writer()
        for kind, value in (("y", ord("l")), ("y", METHOD_CALL), ("y", 0), ("y", 1)):
            header.value(kind, value)
        header.value("u", len(body.buf))
        header.value("u", self.serial)
        header.value("a(yv)", fields)
        header.align(8)
        try:
            self.sock.sendall(bytes(header.buf) + bytes(body.buf))
            return self._reply(self.serial, member)
        except OSError as exc:
            raise OcirtError(f"D-Bus: calling {member} on systemd: {exc.strerror or exc}") from None

    def _reply(self, serial: int, member: str) -> Reader:
        while True:
            data = self._message()
            kind = data[1]
            fields = Reader(data, 12)
            end = 16 + fields.value("u")
            found: dict[int, Any] = {}
            while fields.pos < end:
                fields.pos += -fields.pos % 8
                code = fields.value("y")
                found[code] = fields.value("v")
            if kind not in (METHOD_RETURN, ERROR) or found.get(HEADER_REPLY_SERIAL) != serial:
                continue  # a signal, or a reply to nothing of ours
            body = Reader(data, end + (-end % 8))
            if kind == ERROR:
                name = found.get(HEADER_ERROR_NAME, "")
                text = body.value("s") if str(found.get(HEADER_SIGNATURE, "")).startswith("s") else name
                raise DBusError(name, f"systemd: {member}: {text}")
            return body

    def _message(self) -> bytes:
        head = self._read(16)
        if head[0:1] != b"l":
            raise OcirtError("D-Bus: systemd sent a big-endian message, which ocirt does not read")
        fields_len = int.from_bytes(head[12:16], "little")
        body_len = int.from_bytes(head[4:8], "little")
        rest = fields_len + (-(16 + fields_len) % 8) + body_len
        return head + self._read(rest)

    def _read(self, size: int) -> bytes:
        while len(self.pending) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OcirtError("D-Bus: systemd closed the connection")
            self.pending += chunk
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.pending:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OcirtError("D-Bus: systemd closed the connection during authentication")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line
