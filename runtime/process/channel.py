"""The sync channel between ``ocirt create`` and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, and the peer's death reads as
end-of-file, so the parent never waits forever on a child that crashed. Messages are small
JSON objects: ``{"type": ..., ...}``.
"""

from __future__ import annotations

import _socket
import os
import struct

from ocirt.foundation import fastjson
from ocirt.runtime.errors import OcirtError, clip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Message types, in the order a create sends them.
USERNS = "userns"  # intermediate -> parent: new user namespace made, write its id maps
MAPPED = "mapped"  # parent -> intermediate: maps written
MOUNTNS = "mountns"  # intermediate -> parent: in the container's mount namespace, open bind sources
SOURCES = "sources"  # parent -> intermediate: those sources, as SCM_RIGHTS fds
GO = "go"  # parent -> intermediate: it is in the container's cgroup, fork init
PID = "pid"  # intermediate -> parent: the host pid of init
HOOKS = "hooks"  # init -> parent: before pivot_root, run prestart and createRuntime hooks
HOOKED = "hooked"  # parent -> init: they succeeded
READY = "ready"  # init -> parent: set up, now waiting on the exec fifo
ERROR = "error"  # any child -> parent: setup failed, "msg" says why

_MAX = 65536


class Channel:
    __slots__ = ("sock",)

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    def send(self, kind: str, **fields: Any) -> None:
        """An error's ``msg`` may echo a huge input: it is clipped so the message fits one
        datagram (a longer one would be cut by ``recv``). surrogateescape'd file names from
        the kernel travel as they are."""
        if "msg" in fields:
            fields["msg"] = clip(fields["msg"])
        self.sock.send(fastjson.dumps({"type": kind, **fields}).encode(errors="surrogatepass"))

    def send_fds(self, kind: str, fds: list[int], **fields: Any) -> None:
        data = fastjson.dumps({"type": kind, **fields}).encode()
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        self.sock.sendmsg([data], rights if fds else [])

    def expect_fds(self, kind: str, who: str, count: int) -> tuple[dict[str, Any], list[int]]:
        """``expect`` for a ``send_fds`` message of ``count`` descriptors (close-on-exec)."""
        data, ancdata, flags, _ = self.sock.recvmsg(
            _MAX, _socket.CMSG_SPACE(4 * count), _socket.MSG_CMSG_CLOEXEC
        )
        fds: list[int] = []
        for level, typ, raw in ancdata:
            if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
                fds += struct.unpack(f"{len(raw) // 4}i", raw[: len(raw) // 4 * 4])
        try:
            msg = self._check(fastjson.loads(data.decode()) if data else None, kind, who, ())
            if len(fds) != count or flags & _socket.MSG_CTRUNC:
                raise OcirtError(f"{who}: expected {count} file descriptors, got {len(fds)}")
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return msg, fds

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None when every peer has closed its end."""
        data = self.sock.recv(_MAX)
        if not data:
            return None
        try:
            msg: dict[str, Any] = fastjson.loads(data.decode(errors="surrogatepass"))
        except ValueError:
            raise OcirtError(f"garbled message on the setup channel ({len(data)} bytes)") from None
        return msg

    def expect(self, kind: str, who: str, also: tuple[str, ...] = ()) -> dict[str, Any]:
        """Wait for ``kind`` (or one of ``also``); an ``error`` message or a dead peer becomes
        an OcirtError."""
        return self._check(self.recv(), kind, who, also)

    @staticmethod
    def _check(msg: dict[str, Any] | None, kind: str, who: str, also: tuple[str, ...]) -> dict[str, Any]:
        if msg is None:
            raise OcirtError(f"{who} exited during container setup")
        if msg["type"] == ERROR:
            raise OcirtError(msg["msg"])
        if msg["type"] != kind and msg["type"] not in also:
            raise OcirtError(f"{who}: unexpected message {msg['type']!r} (wanted {kind!r})")
        return msg

    def close(self) -> None:
        self.sock.close()


def pair() -> tuple[Channel, Channel]:
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    return Channel(a), Channel(b)
