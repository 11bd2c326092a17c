"""``--log-driver syslog``: real containers send their lines to receivers this test runs on
127.0.0.1 (UDP, TCP) and on a unix datagram socket, in the formats docker's syslog driver
writes (its default ``<PRI>Stamp tag[pid]: msg``, ``rfc3164``, ``rfc5424``,
``rfc5424micro``; the priority is facility*8 + 6 for stdout, + 3 for stderr), with the tag
template and facility options; ``logs`` refuses as docker does, a receiver that is not there
fails the start, and bad options are one line."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator

import pytest
from support.ctl import Manager, checked, manager

SCRIPT = "echo out; echo err >&2; printf partial"
STAMP = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"  # Go's time.Stamp
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)"
HOST = re.escape(socket.gethostname())


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("syslog"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def run_logged(ctl: Manager, name: str, *log_flags: str) -> str:
    """The container's id, once it has exited (so the shim has sent everything)."""
    cid = ctl("run", "-d", "--name", name, "--network", "none", "--log-driver", "syslog", *log_flags,
              ctl.httpd, "sh", "-c", SCRIPT).stdout.strip()  # fmt: skip
    ctl("wait", name)
    return cid


def datagrams(sock: socket.socket, count: int) -> list[bytes]:
    sock.settimeout(20)
    return sorted(sock.recv(65536) for _ in range(count))


def test_udp_rfc5424(ctl: Manager) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        run_logged(ctl, "sl1", "--log-opt", f"syslog-address=udp://127.0.0.1:{port}",
                   "--log-opt", "syslog-format=rfc5424", "--log-opt", "tag=web")  # fmt: skip
        got = datagrams(rx, 3)
    ctl("rm", "sl1")
    head = rf"1 {RFC3339} {HOST} web (\d+) web - "
    patterns = [rf"<27>{head}err\n", rf"<30>{head}out\n", rf"<30>{head}partial\n"]
    matches = [re.fullmatch(p.encode(), g) for p, g in zip(patterns, got, strict=True)]
    assert all(matches), got
    assert len({m.group(2) for m in matches if m}) == 1  # one sender: the shim's pid


def test_tcp_default_format_and_facility(ctl: Manager) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        received: list[bytes] = []

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                while chunk := conn.recv(65536):
                    received.append(chunk)

        reader = threading.Thread(target=serve, daemon=True)
        reader.start()
        cid = run_logged(ctl, "sl2", "--log-opt", f"syslog-address=tcp://127.0.0.1:{port}",
                         "--log-opt", "syslog-facility=local3")  # fmt: skip
        reader.join(timeout=20)
    ctl("rm", "sl2")
    lines = sorted(b"".join(received).decode().splitlines())
    tag = re.escape(cid[:12])  # docker's default tag: {{.ID}}
    pri_out, pri_err = 19 * 8 + 6, 19 * 8 + 3
    patterns = [rf"<{pri_err}>{STAMP} {tag}\[\d+\]: err", rf"<{pri_out}>{STAMP} {tag}\[\d+\]: out",
                rf"<{pri_out}>{STAMP} {tag}\[\d+\]: partial"]  # fmt: skip
    assert len(lines) == 3 and all(re.fullmatch(p, ln) for p, ln in zip(patterns, lines, strict=True)), lines


def test_unixgram_rfc3164_with_tag_template(ctl: Manager, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(path)
        flags = ["--log-opt", "syslog-format=rfc3164", "--log-opt", "tag={{.Name}}/{{.ID}}"]
        cid = run_logged(ctl, "sl3", "--log-opt", f"syslog-address=unixgram://{path}", *flags)
        got = datagrams(rx, 3)
    assert re.fullmatch(rf"<30>{STAMP} {HOST} sl3/{cid[:12]}\[\d+\]: out\n".encode(), got[1]), got
    done = ctl("logs", "sl3", check=False)
    assert (done.returncode, done.stderr) == (
        1,
        "ocirtctl: configured logging driver does not support reading\n",
    )
    ctl("rm", "sl3")


def test_rfc5424micro_stamps_carry_microseconds(ctl: Manager) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        run_logged(ctl, "sl4", "--log-opt", f"syslog-address=udp://127.0.0.1:{rx.getsockname()[1]}",
                   "--log-opt", "syslog-format=rfc5424micro")  # fmt: skip
        got = datagrams(rx, 3)
    ctl("rm", "sl4")
    assert re.match(rb"<30>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d) ", got[1]), got


def test_an_absent_receiver_fails_the_start(ctl: Manager) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        address = f"syslog-address=tcp://127.0.0.1:{port}"
        done = ctl("run", "-d", "--name", "sl5", "--network", "none", "--log-driver", "syslog",
                   "--log-opt", address, ctl.httpd, "true", check=False)  # fmt: skip
    assert done.returncode != 0 and "failed to initialize logging driver" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1
    ctl("rm", "-f", "sl5", check=False)


@pytest.mark.parametrize(
    ("opt", "words"),
    [
        ("syslog-facility=nope", "--log-opt syslog-facility: invalid facility 'nope'"),
        ("syslog-format=rfc9999", "--log-opt syslog-format: invalid format 'rfc9999'"),
        ("syslog-address=http://127.0.0.1:1", "--log-opt syslog-address: unsupported scheme 'http'"),
        ("syslog-address=udp://127.0.0.1:99999", "--log-opt syslog-address: 'udp://127.0.0.1:99999'"),
        ("gelf-address=udp://127.0.0.1:1", "--log-opt: unsupported option 'gelf-address'"),
    ],
)
def test_bad_options_are_one_line(ctl: Manager, opt: str, words: str) -> None:
    done = ctl("create", "--log-driver", "syslog", "--log-opt", opt, ctl.httpd, check=False)
    assert done.returncode == 125 and done.stderr.startswith(f"ocirtctl: {words}"), done.stderr
    assert len(done.stderr.splitlines()) == 1 and ctl.ids() == []
