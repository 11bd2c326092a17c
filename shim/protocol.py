"""The wire format shared by ``ocirt-shim`` and its client (see docs/shim-protocol.md).

It imports nothing: the shim pays for every module it loads, once per container.

A connection starts with one JSON request line and gets one JSON reply line. ``attach``
and ``exec`` then switch the connection to frames: one kind byte, a 4-byte big-endian
length, the payload.
"""

from __future__ import annotations

SOCKET_NAME = "shim.sock"
PID_FILE = "shim.pid"
EXIT_FILE = "exit.json"

# frames from the shim
STDOUT = 1
STDERR = 2
EXIT = 3  # payload: the exit status as JSON
# frames from the client
STDIN = 0  # an empty payload closes the stdin
RESIZE = 4  # payload: {"rows": R, "cols": C}

HEADER = 5
MAX_FRAME = 1 << 20


def frame(kind: int, payload: bytes) -> bytes:
    return bytes((kind,)) + len(payload).to_bytes(4, "big") + payload


def split_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete frame off the front of ``buf``; raise ValueError on a bad one."""
    out = []
    while len(buf) >= HEADER:
        size = int.from_bytes(buf[1:HEADER], "big")
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes is larger than {MAX_FRAME}")
        if len(buf) < HEADER + size:
            break
        out.append((buf[0], bytes(buf[HEADER : HEADER + size])))
        del buf[: HEADER + size]
    return out
