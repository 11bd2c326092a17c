"""The ``gelf``, ``fluentd`` and ``journald`` log drivers: docker's message shapes on the
wire, sent by the shim line by line (``lognet.LineSink``).

``info`` is what docker's ``logger.Info`` holds, given by the manager (``--log-info``):
``id``, ``name``, ``image-id``, ``image-name``, ``command``, ``created`` and the
``attr:KEY`` extras its ``labels``/``env`` options selected.
"""

from __future__ import annotations

import _socket
import os
import time
import zlib

from ocirt.foundation import fastjson
from ocirt.shim.lognet import LineSink, LogOptionError, connect, split_address

EXTRA_OPTIONS = ("tag", "labels", "env")
GELF_OPTIONS = ("gelf-address", "gelf-compression-type", "gelf-compression-level", *EXTRA_OPTIONS)
FLUENTD_OPTIONS = ("fluentd-address", "fluentd-sub-second-precision", *EXTRA_OPTIONS)
JOURNALD_OPTIONS = EXTRA_OPTIONS
GELF_CHUNK = 1420  # go-gelf's chunk size: a larger UDP message goes out in chunks
GELF_MAX_CHUNKS = 128
JOURNAL_SOCKET = "/run/systemd/journal/socket"
JOURNAL_SOCKET_ENV = "OCIRT_JOURNAL_SOCKET"  # for tests: a socket the test reads instead
_LEVEL = {"stdout": 6, "stderr": 3}  # syslog severities: info, err


def extras(info: dict[str, str]) -> dict[str, str]:
    return {k[5:]: v for k, v in info.items() if k.startswith("attr:")}


def check_option(key: str, value: str) -> None:
    """One ``--log-opt`` of these drivers, refused as docker's ``ValidateLogOpt`` does."""
    if key == "gelf-address":
        scheme = split_address(value, 12201)[0]
        if scheme not in ("udp", "tcp"):
            raise LogOptionError(f"gelf-address: gelf needs udp:// or tcp://, not {scheme}://")
    elif key == "gelf-compression-type" and value not in ("gzip", "zlib", "none"):
        raise LogOptionError(f"gelf-compression-type: {value!r} is not gzip, zlib or none")
    elif key == "gelf-compression-level" and not (value.lstrip("-").isdigit() and -1 <= int(value) <= 9):
        raise LogOptionError(f"gelf-compression-level: {value!r} is not a level from -1 to 9")
    elif key == "fluentd-address":
        fluentd_address(value)
    elif key == "fluentd-sub-second-precision" and value not in ("true", "false"):
        raise LogOptionError(f"fluentd-sub-second-precision: {value!r} is not true or false")


class Gelf:
    """docker's ``gelf``: GELF 1.1 JSON with the container's ``_`` fields; over UDP
    compressed (gzip by default) and chunked past 1420 bytes, over TCP plain and
    NUL-terminated."""

    def __init__(self, options: dict[str, str], info: dict[str, str]) -> None:
        for key, value in options.items():
            check_option(key, value)
        if "gelf-address" not in options:
            raise LogOptionError("gelf-address: required by the gelf driver")
        scheme, host, port = split_address(options["gelf-address"], 12201)
        self.tcp = scheme == "tcp"
        if self.tcp and ("gelf-compression-type" in options or "gelf-compression-level" in options):
            raise LogOptionError("gelf-compression-type: compression is for udp:// only")
        self.compression = options.get("gelf-compression-type", "gzip")
        self.level = int(options.get("gelf-compression-level", "1"))
        self.fields = {
            "_container_id": info["id"],
            "_container_name": info.get("name", ""),
            "_image_id": info.get("image-id", ""),
            "_image_name": info.get("image-name", ""),
            "_command": info.get("command", ""),
            "_tag": options.get("tag") or info["id"][:12],
            "_created": info.get("created", ""),
        } | {f"_{k}": v for k, v in extras(info).items()}
        self.host = _socket.gethostname()
        self.sock = connect(scheme, host, port)

    def send(self, stream: str, text: bytes, partial: bool) -> None:
        doc: dict[str, object] = {"version": "1.1", "host": self.host}
        doc |= {
            "short_message": text.decode("utf-8", "replace"),
            "timestamp": time.time_ns() // 1_000_000 / 1000,
        }
        doc["level"] = _LEVEL[stream]
        doc |= self.fields
        data = fastjson.dumps(doc).encode()
        try:
            if self.tcp:
                self.sock.sendall(data + b"\0")
            else:
                for packet in self._packets(data):
                    self.sock.send(packet)
        except OSError:
            pass

    def _packets(self, data: bytes) -> list[bytes]:
        if self.compression != "none":
            wbits = 31 if self.compression == "gzip" else 15
            packer = zlib.compressobj(self.level, zlib.DEFLATED, wbits)
            data = packer.compress(data) + packer.flush()
        if len(data) <= GELF_CHUNK:
            return [data]
        size = GELF_CHUNK - 12
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        if len(pieces) > GELF_MAX_CHUNKS:
            return []  # go-gelf refuses a message of more than 128 chunks
        msg_id = os.urandom(8)
        return [b"\x1e\x0f" + msg_id + bytes((n, len(pieces))) + p for n, p in enumerate(pieces)]

    def close(self) -> None:
        self.sock.close()


def fluentd_address(text: str) -> tuple[str, str, int]:
    """docker's fluentd address: ``host:port``, ``tcp://host:port`` or ``unix:///path``."""
    if "://" not in text:
        text = "tcp://" + text
    scheme, host, port = split_address(text, 24224)
    if scheme not in ("tcp", "unix"):
        raise LogOptionError(f"fluentd-address: {scheme}:// is not tcp:// or unix://")
    return scheme, host, port


def msgpack(value: object) -> bytes:
    """The MessagePack the Forward protocol carries: nil, bool, int, str, list, dict and
    ``EventTime`` (``(seconds, nanoseconds)``: ext type 0)."""
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 128:
            return bytes((value,))
        return b"\xd3" + value.to_bytes(8, "big", signed=True)
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        n = len(raw)
        if n < 32:
            head = bytes((0xA0 | n,))
        elif n < 256:
            head = b"\xd9" + bytes((n,))
        elif n < 65536:
            head = b"\xda" + n.to_bytes(2, "big")
        else:
            head = b"\xdb" + n.to_bytes(4, "big")
        return head + raw
    if isinstance(value, tuple):
        sec, nsec = int(value[0]), int(value[1])
        return b"\xd7\x00" + sec.to_bytes(4, "big") + nsec.to_bytes(4, "big")
    if isinstance(value, list):
        return _container(0x90, b"\xdc", b"\xdd", len(value)) + b"".join(msgpack(v) for v in value)
    if isinstance(value, dict):
        body = b"".join(msgpack(k) + msgpack(v) for k, v in value.items())
        return _container(0x80, b"\xde", b"\xdf", len(value)) + body
    raise TypeError(f"msgpack: cannot encode {type(value).__name__}")


def _container(fix: int, head16: bytes, head32: bytes, n: int) -> bytes:
    if n < 16:
        return bytes((fix | n,))
    return head16 + n.to_bytes(2, "big") if n < 65536 else head32 + n.to_bytes(4, "big")


class Fluentd:
    """docker's ``fluentd``: Forward protocol message mode, ``[tag, time, record, nil]``
    with the record docker builds (``container_id``, ``container_name``, ``source``,
    ``log``, the extras; ``partial_message`` for a piece of a longer line)."""

    def __init__(self, options: dict[str, str], info: dict[str, str]) -> None:
        for key, value in options.items():
            check_option(key, value)
        scheme, host, port = fluentd_address(options.get("fluentd-address", "localhost:24224"))
        self.tag = options.get("tag") or info["id"][:12]
        self.subsecond = options.get("fluentd-sub-second-precision") == "true"
        self.record = {"container_id": info["id"], "container_name": "/" + info.get("name", "")}
        self.extras = extras(info)
        self.sock = connect(scheme, host, port)

    def send(self, stream: str, text: bytes, partial: bool) -> None:
        record = self.record | {"source": stream, "log": text.decode("utf-8", "replace")} | self.extras
        if partial:
            record["partial_message"] = "true"
        now = time.time_ns()
        stamp: object = divmod(now, 1_000_000_000) if self.subsecond else now // 1_000_000_000
        try:
            self.sock.sendall(msgpack([self.tag, stamp, record, None]))
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def journal_field(name: str, value: str) -> bytes:
    """One field of the journal's native protocol: ``NAME=value\\n``, or for a value with a
    newline ``NAME\\n`` + 64-bit little-endian length + value + ``\\n``."""
    raw = value.encode("utf-8", "surrogateescape")
    if b"\n" in raw:
        return name.encode() + b"\n" + len(raw).to_bytes(8, "little") + raw + b"\n"
    return name.encode() + b"=" + raw + b"\n"


def journal_name(key: str) -> str:
    """docker's field name for an extra: upper case, ``_`` for anything else, no leading ``_``."""
    out = "".join(c if c.isascii() and c.isalnum() else "_" for c in key.upper())
    return out.lstrip("_") or "EXTRA"


class Journald:
    """docker's ``journald``: one native-protocol datagram per line to the journal socket,
    with ``MESSAGE``, ``PRIORITY`` and the container's fields."""

    def __init__(self, options: dict[str, str], info: dict[str, str]) -> None:
        tag = options.get("tag") or info["id"][:12]
        fields = {
            "CONTAINER_ID": info["id"][:12],
            "CONTAINER_ID_FULL": info["id"],
            "CONTAINER_NAME": info.get("name", ""),
            "CONTAINER_TAG": tag,
            "IMAGE_NAME": info.get("image-name", ""),
            "SYSLOG_IDENTIFIER": tag,
        } | {journal_name(k): v for k, v in extras(info).items()}
        self.fields = b"".join(journal_field(k, v) for k, v in fields.items())
        path = os.environ.get(JOURNAL_SOCKET_ENV) or JOURNAL_SOCKET
        self.sock = connect("unixgram", path, 0)

    def send(self, stream: str, text: bytes, partial: bool) -> None:
        message = journal_field("MESSAGE", text.decode("utf-8", "replace"))
        message += f"PRIORITY={_LEVEL[stream]}\n".encode() + self.fields
        if partial:
            message += b"CONTAINER_PARTIAL_MESSAGE=true\n"
        try:
            self.sock.send(message)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def open_gelf(options: dict[str, str], info: dict[str, str]) -> LineSink:
    sender = Gelf(options, info)
    return LineSink(sender.send, sender.close)


def open_fluentd(options: dict[str, str], info: dict[str, str]) -> LineSink:
    sender = Fluentd(options, info)
    return LineSink(sender.send, sender.close)


def open_journald(options: dict[str, str], info: dict[str, str]) -> LineSink:
    sender = Journald(options, info)
    return LineSink(sender.send, sender.close)
