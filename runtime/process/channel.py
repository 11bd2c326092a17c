"""The sync channel between ``ocirt create`` and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, and the peer's death reads as
end-of-file, so the parent never waits forever on a child that crashed. Messages are small
JSON objects: ``{"type": ..., ...}``.
"""

from __future__ import annotations

import _socket

from ocirt.runtime import fastjson
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Message types, in the order a create sends them.
USERNS = "userns"  # intermediate -> parent: new user namespace made, write its id maps
MAPPED = "mapped"  # parent -> intermediate: maps written
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
        self.sock.send(fastjson.dumps({"type": kind, **fields}).encode())

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None when every peer has closed its end."""
        data = self.sock.recv(_MAX)
        return fastjson.loads(data.decode()) if data else None

    def expect(self, kind: str, who: str, also: tuple[str, ...] = ()) -> dict[str, Any]:
        """Wait for ``kind`` (or one of ``also``); an ``error`` message or a dead peer becomes
        an OcirtError."""
        msg = self.recv()
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
