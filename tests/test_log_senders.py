"""``--log-driver gelf|fluentd|journald``: real containers send their lines to receivers
this test runs (on 127.0.0.1, or a unix datagram socket standing for the journal's), which
decode them by the protocols' own specifications: GELF 1.1 (gzip/zlib/none, UDP chunks
``1e 0f`` + id + seq + count, TCP NUL-terminated), Fluentd Forward message mode in
MessagePack (decoded here from the spec), the journal's native protocol (``KEY=value`` and
length-prefixed binary fields). The fields are docker's (daemon/logger/{gelf,fluentd,
journald}); ``--log-opt`` values each driver refuses are one line."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from ocirt.manager.containers import layout
from support.ctl import Manager, checked, manager

SCRIPT = "echo out; echo err >&2"


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("senders"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def run_logged(ctl: Manager, name: str, driver: str, *flags: str, script: str = SCRIPT) -> str:
    cid = ctl("run", "-d", "--name", name, "--network", "none", "--label", "team=blue", "-e", "STAGE=test",
              "--log-driver", driver, *flags, ctl.httpd, "sh", "-c", script).stdout.strip()  # fmt: skip
    ctl("wait", name)
    return cid


class TcpReceiver:
    """Accepts one connection on 127.0.0.1 and keeps all it reads."""

    def __init__(self) -> None:
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.data = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.srv.accept()
        with conn:
            while chunk := conn.recv(65536):
                self.data += chunk

    def received(self) -> bytes:
        self.thread.join(timeout=20)
        self.srv.close()
        return self.data


def gelf_message(packets: list[bytes]) -> dict[str, Any]:
    """One GELF message from its UDP packets: chunks joined in order, then decompressed by
    its magic bytes (gzip ``1f 8b``, zlib ``78``, else plain JSON)."""
    if packets[0][:2] == b"\x1e\x0f":
        assert len({p[2:10] for p in packets}) == 1 and sorted(p[10] for p in packets) == list(
            range(len(packets))
        )
        assert {p[11] for p in packets} == {len(packets)}
        data = b"".join(p[12:] for p in sorted(packets, key=lambda p: p[10]))
    else:
        (data,) = packets
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:1] == b"\x78":
        data = zlib.decompress(data)
    doc: dict[str, Any] = json.loads(data)
    return doc


def check_gelf(doc: dict[str, Any], ctl: Manager, cid: str, name: str) -> None:
    assert doc["version"] == "1.1" and doc["host"] == socket.gethostname()
    assert isinstance(doc["timestamp"], float)
    image_id = ctl("image", "inspect", "--format", "{{.Id}}", ctl.httpd).stdout.strip()
    assert (doc["_container_id"], doc["_container_name"], doc["_image_name"]) == (cid, name, ctl.httpd)
    assert (doc["_image_id"], doc["_tag"], doc["_command"]) == (image_id, cid[:12], f"sh -c {SCRIPT}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", doc["_created"])
    assert (doc["_team"], doc["_STAGE"]) == ("blue", "test")


def test_gelf_udp_gzip(ctl: Manager) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(20)
        cid = run_logged(ctl, "gl1", "gelf", "--log-opt", f"gelf-address=udp://127.0.0.1:{rx.getsockname()[1]}",
                         "--log-opt", "labels=team", "--log-opt", "env=STAGE")  # fmt: skip
        packets = [rx.recv(65536) for _ in range(2)]
    ctl("rm", "gl1")
    assert all(p[:2] == b"\x1f\x8b" for p in packets)  # docker's default compression: gzip
    docs = sorted((gelf_message([p]) for p in packets), key=lambda d: d["level"])
    assert [(d["short_message"], d["level"]) for d in docs] == [("err", 3), ("out", 6)]
    for doc in docs:
        check_gelf(doc, ctl, cid, "gl1")


def test_gelf_udp_chunks_a_long_line(ctl: Manager) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(20)
        address = f"gelf-address=udp://127.0.0.1:{rx.getsockname()[1]}"
        run_logged(ctl, "gl2", "gelf", "--log-opt", address, "--log-opt", "gelf-compression-type=none",
                   script="i=0; while [ $i -lt 500 ]; do printf %s $i-; i=$((i+1)); done; echo")  # fmt: skip
        packets = [rx.recv(65536)]
        count = packets[0][11]
        packets += [rx.recv(65536) for _ in range(count - 1)]
    ctl("rm", "gl2")
    assert count > 1 and all(len(p) <= 1420 for p in packets)
    assert gelf_message(packets)["short_message"] == "".join(f"{i}-" for i in range(500))


def test_gelf_tcp_nul_terminated(ctl: Manager) -> None:
    rx = TcpReceiver()
    cid = run_logged(ctl, "gl3", "gelf", "--log-opt", f"gelf-address=tcp://127.0.0.1:{rx.port}",
                     "--log-opt", "labels=team", "--log-opt", "env=STAGE")  # fmt: skip
    data = rx.received()
    ctl("rm", "gl3")
    assert data.endswith(b"\0") and data.count(b"\0") == 2
    docs = sorted((json.loads(m) for m in data.split(b"\0")[:-1]), key=lambda d: d["level"])
    assert [d["short_message"] for d in docs] == ["err", "out"]
    check_gelf(docs[0], ctl, cid, "gl3")


def unpack(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """A MessagePack decoder from the format's specification (the types Forward uses)."""
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
        if b <= 0xBF:
            n = b & 0x1F
        else:
            width = {0xD9: 1, 0xDA: 2, 0xDB: 4}[b]
            n, pos = int.from_bytes(data[pos : pos + width], "big"), pos + width
        return data[pos : pos + n].decode(), pos + n
    if 0x90 <= b <= 0x9F or 0x80 <= b <= 0x8F or b in (0xDC, 0xDD, 0xDE, 0xDF):
        is_map = 0x80 <= b <= 0x8F or b in (0xDE, 0xDF)
        if b in (0xDC, 0xDD, 0xDE, 0xDF):
            width = 2 if b in (0xDC, 0xDE) else 4
            n, pos = int.from_bytes(data[pos : pos + width], "big"), pos + width
        else:
            n = b & 0x0F
        items = []
        for _ in range(n * 2 if is_map else n):
            item, pos = unpack(data, pos)
            items.append(item)
        return (dict(zip(items[::2], items[1::2], strict=True)) if is_map else items), pos
    ints = {0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False), 0xD0: (1, True),
            0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True)}  # fmt: skip
    if b in ints:
        width, signed = ints[b]
        return int.from_bytes(data[pos : pos + width], "big", signed=signed), pos + width
    if b == 0xD7 and data[pos] == 0:  # fixext 8, type 0: Forward's EventTime
        return ("EventTime", int.from_bytes(data[pos + 1 : pos + 5], "big"),
                int.from_bytes(data[pos + 5 : pos + 9], "big")), pos + 9  # fmt: skip
    if b == 0xC0:
        return None, pos
    raise AssertionError(f"unexpected msgpack byte {b:#x} at {pos - 1}")


def test_fluentd_forward_message_mode(ctl: Manager) -> None:
    rx = TcpReceiver()
    cid = run_logged(ctl, "fl1", "fluentd", "--log-opt", f"fluentd-address=127.0.0.1:{rx.port}",
                     "--log-opt", "tag=app.{{.Name}}", "--log-opt", "labels=team",
                     "--log-opt", "fluentd-sub-second-precision=true")  # fmt: skip
    data = rx.received()
    ctl("rm", "fl1")
    messages, pos = [], 0
    while pos < len(data):
        msg, pos = unpack(data, pos)
        messages.append(msg)
    assert len(messages) == 2
    for tag, stamp, record, option in messages:
        assert (tag, option) == ("app.fl1", None)
        assert stamp[0] == "EventTime" and 0 <= stamp[2] < 10**9
        assert (
            record["container_id"] == cid and record["container_name"] == "/fl1" and record["team"] == "blue"
        )
    assert sorted((m[2]["source"], m[2]["log"]) for m in messages) == [("stderr", "err"), ("stdout", "out")]


def journal_fields(datagram: bytes) -> dict[str, str]:
    """The journal's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL document)."""
    fields, pos = {}, 0
    while pos < len(datagram):
        end = datagram.index(b"\n", pos)
        line = datagram[pos:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            pos = end + 1
        else:
            key, size = line, int.from_bytes(datagram[end + 1 : end + 9], "little")
            value = datagram[end + 9 : end + 9 + size]
            assert datagram[end + 9 + size : end + 10 + size] == b"\n"
            pos = end + 10 + size
        fields[key.decode()] = value.decode()
    return fields


def test_journald_native_protocol(ctl: Manager, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.path.join(str(tmp_path), "journal.sock")
    monkeypatch.setenv("OCIRT_JOURNAL_SOCKET", path)  # the shim inherits it from ocirtctl
    monkeypatch.setenv("OCIRT_SHIM_ZYGOTE", "none")  # a running zygote would not see it
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(path)
        rx.settimeout(20)
        cid = run_logged(ctl, "jd1", "journald", "--log-opt", "labels=team", "--log-opt", "tag={{.Name}}")
        got = sorted((journal_fields(rx.recv(65536)) for _ in range(2)), key=lambda f: f["PRIORITY"])
    done = ctl("logs", "jd1", check=False)
    ctl("rm", "jd1")
    assert [(f["MESSAGE"], f["PRIORITY"]) for f in got] == [("err", "3"), ("out", "6")]
    for f in got:
        assert (f["CONTAINER_ID"], f["CONTAINER_ID_FULL"], f["CONTAINER_NAME"]) == (cid[:12], cid, "jd1")
        assert (f["CONTAINER_TAG"], f["SYSLOG_IDENTIFIER"], f["IMAGE_NAME"], f["TEAM"]) == (
            "jd1",
            "jd1",
            ctl.httpd,
            "blue",
        )
    assert done.returncode == 1 and "does not support reading" in done.stderr


@pytest.mark.parametrize(
    ("driver", "opt", "words"),
    [
        ("gelf", "gelf-address=unix:///x", "gelf-address: gelf needs udp:// or tcp://"),
        ("gelf", "gelf-compression-type=lz4", "gelf-compression-type: 'lz4' is not gzip, zlib or none"),
        ("gelf", "gelf-compression-level=10", "gelf-compression-level: '10' is not a level from -1 to 9"),
        ("fluentd", "fluentd-address=udp://127.0.0.1:1", "fluentd-address: udp:// is not tcp:// or unix://"),
        ("fluentd", "fluentd-sub-second-precision=yes", "fluentd-sub-second-precision: 'yes' is not true or"),
        ("journald", "max-size=1m", "--log-opt: unsupported option 'max-size'"),
    ],
)
def test_bad_options_are_one_line(ctl: Manager, driver: str, opt: str, words: str) -> None:
    done = ctl("create", "--log-driver", driver, "--log-opt", opt, ctl.httpd, check=False)
    assert done.returncode == 125 and words in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1 and ctl.ids() == []


def test_the_default_driver_is_dockers_json_file(ctl: Manager) -> None:
    ctl("run", "--name", "df1", "--network", "none", ctl.httpd, "sh", "-c", SCRIPT)
    doc = ctl.inspect("df1")
    assert doc["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    with open(layout.log_path(ctl.root, doc["Id"]), "rb") as f:
        records = [json.loads(line) for line in f]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z"
    assert all(list(r) == ["log", "stream", "time"] and re.fullmatch(stamp, r["time"]) for r in records)
    assert sorted((r["stream"], r["log"]) for r in records) == [("stderr", "err\n"), ("stdout", "out\n")]
    done = ctl("logs", "df1")
    assert (done.stdout, done.stderr) == ("out\n", "err\n")
    ctl("rm", "df1")
