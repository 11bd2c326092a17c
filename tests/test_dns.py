"""The embedded DNS server of a user-defined network, queried from the host at its gateway:
malformed packets do not stop it, TCP is answered, an answer too big for plain UDP comes back
truncated (TC) and whole over TCP, and a flood of forwarded queries cannot exhaust it.

Its upstream is a resolver this test runs on a loopback address of its own, port 53; queries
come from the host to the bridge's address; nothing leaves this machine. The answers' A data
are documentation addresses (192.0.2.0/24), never contacted."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from ocirt.manager.network import dnsd, service, settings
from support.nethost import cleanup, net_root, set_upstream, wait_for

BIG = 40  # A records in big.test's answer: 12 + 14 + 40 * 16 bytes, well over 512


def query(name: str, qid: int, edns: int | None = None) -> bytes:
    """A recursive A query, with an EDNS OPT record offering ``edns`` bytes if given."""
    head = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    opt = b"\0" + struct.pack("!HHIH", 41, edns, 0, 0) if edns else b""
    return head + qname + struct.pack("!HH", 1, 1) + opt


def decode(reply: bytes) -> tuple[int, bool, int, list[str]]:
    """(id, TC bit, rcode, A addresses) of a reply to a ``query`` (one question)."""
    qid, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", reply[:12])
    pos = 12
    while reply[pos]:
        pos += reply[pos] + 1
    pos += 5
    addrs = []
    for _ in range(ancount):
        if reply[pos] & 0xC0:
            pos += 2
        else:
            while reply[pos]:
                pos += reply[pos] + 1
            pos += 1
        rtype, _, _, rdlen = struct.unpack("!HHIH", reply[pos : pos + 10])
        pos += 10
        if rtype == 1:
            addrs.append(socket.inet_ntoa(reply[pos : pos + rdlen]))
        pos += rdlen
    return qid, bool(flags & 0x0200), flags & 0xF, addrs


def reply_for(q: bytes) -> bytes | None:
    """The upstream's answer: big.test has BIG addresses, small.test one, silent.test none
    ever (a resolver that does not answer), anything else NXDOMAIN."""
    pos, labels = 12, []
    while q[pos]:
        labels.append(q[pos + 1 : pos + 1 + q[pos]].decode())
        pos += q[pos] + 1
    name, end = ".".join(labels), pos + 5
    count = {"big.test": BIG, "small.test": 1}.get(name, 0)
    if name == "silent.test":
        return None
    out = q[:2] + struct.pack("!HHHHH", 0x8180 | (0 if count else 3), 1, count, 0, 0) + q[12:end]
    return out + b"".join(
        struct.pack("!HHHIH4B", 0xC00C, 1, 1, 60, 4, 192, 0, 2, i + 1) for i in range(count)
    )


class Upstream:
    """A resolver on 127.X.Y.Z:53, UDP and TCP, that answers whatever size the answer is."""

    def __init__(self) -> None:
        self.addr = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.addr, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind((self.addr, 53))
        self.tcp.listen(8)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.done = threading.Event()
        self.threads = [threading.Thread(target=t, daemon=True) for t in (self._udp, self._tcp)]
        for t in self.threads:
            t.start()

    def _udp(self) -> None:
        while not self.done.is_set():
            try:
                q, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            out = reply_for(q)
            if out is not None:
                self.udp.sendto(out, peer)

    def _tcp(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                size = struct.unpack("!H", conn.recv(2))[0]
                out = reply_for(conn.recv(size))
                if out is not None:
                    conn.sendall(struct.pack("!H", len(out)) + out)

    def close(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join()
        self.udp.close()
        self.tcp.close()


class Net:
    def __init__(self, root: str, gateway: str, network_id: str, alpha: str) -> None:
        self.root, self.gateway, self.id, self.alpha = root, gateway, network_id, alpha

    def udp(self, packet: bytes, tries: int = 3) -> bytes:
        """Asked again each second, as a resolver does: a burst may overflow the server's
        socket buffer and the kernel drops what does not fit."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.connect((self.gateway, 53))
            for _ in range(tries):
                s.send(packet)
                try:
                    return s.recv(65535)
                except TimeoutError:
                    continue
        raise AssertionError(f"no answer in {tries} tries")

    def tcp(self, packet: bytes) -> bytes:
        with socket.create_connection((self.gateway, 53), timeout=5) as s:
            s.sendall(struct.pack("!H", len(packet)) + packet)
            size = struct.unpack("!H", _exact(s, 2))[0]
            return _exact(s, size)

    def serving(self) -> bool:
        return dnsd.running(settings.load(self.root), self.id) is not None


def _exact(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


@pytest.fixture
def net(tmp_path: object) -> Iterator[Net]:
    root = net_root(tmp_path)
    upstream = Upstream()
    try:
        set_upstream(root, upstream.addr)
        created = service.create_network(root, "apps")
        path = service.netns_create(root, "c" * 64)
        ep = service.connect(root, "apps", "c" * 64, path, name="alpha")
        yield Net(root, created.gateway, created.id, ep.ip)
    finally:
        try:
            cleanup(root)
        finally:
            upstream.close()


def test_malformed_packets_do_not_stop_the_server(net: Net) -> None:
    good = query("alpha", 7)
    bad = [
        b"",
        b"\x12",
        good[:12],  # a header that promises a question and has none
        good[:14],  # a label cut short
        good[:12] + b"\xc0\x0c" + good[-4:],  # a compression pointer as the question
        good[:2] + b"\x81\x80" + good[4:],  # a response, not a query
        struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x3f" + b"a" * 63 + b"\x3f",
        os.urandom(1500),
    ]
    for packet in bad:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(packet, (net.gateway, 53))
    for packet in (b"\xff\xff" + b"x" * 10, b"\x00\x05abc", b"\x00"):  # TCP: lengths that lie
        with socket.create_connection((net.gateway, 53), timeout=5) as s:
            s.sendall(packet)
    assert decode(net.udp(good)) == (7, False, 0, [net.alpha])
    assert net.serving()


def test_tcp_queries_are_answered(net: Net) -> None:
    assert decode(net.tcp(query("alpha", 9))) == (9, False, 0, [net.alpha])
    assert decode(net.tcp(query("small.test", 10))) == (10, False, 0, ["192.0.2.1"])  # forwarded


def test_large_answer_is_truncated_over_udp_and_whole_over_tcp(net: Net) -> None:
    plain = net.udp(query("big.test", 11))
    qid, tc, rcode, addrs = decode(plain)
    assert (qid, tc, rcode) == (11, True, 0) and len(plain) <= 512, (len(plain), addrs)
    whole = [f"192.0.2.{i + 1}" for i in range(BIG)]
    assert decode(net.udp(query("big.test", 12, edns=4096))) == (12, False, 0, whole)  # EDNS: fits
    assert decode(net.tcp(query("big.test", 13))) == (13, False, 0, whole)


def test_flood_of_forwarded_queries_is_bounded(net: Net) -> None:
    """200 queries for a name the upstream never answers, with the server in a pids cgroup
    of 64 tasks: one thread per query would hit the limit (and a failed thread start ended
    the server); bounded, the overflow is refused at once and local names still resolve."""
    pid = dnsd.running(settings.load(net.root), net.id)
    assert pid is not None
    group = f"/sys/fs/cgroup/pids/ocirt-test-dns-{os.getpid()}-{random.randint(0, 1 << 30)}"
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("no cgroup v1 pids hierarchy on this host to cap the server's threads")
    os.mkdir(group)
    try:
        with open(f"{group}/pids.max", "w") as f:
            f.write("64")
        with open(f"{group}/cgroup.procs", "w") as f:
            f.write(str(pid))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for n in range(200):
                s.sendto(query("silent.test", 1000 + n), (net.gateway, 53))
        assert decode(net.udp(query("alpha", 14))) == (14, False, 0, [net.alpha])
        assert net.serving()
        # refused while every slot waits on the silent upstream; served again once they time out
        wait_for(lambda: decode(net.udp(query("small.test", 15)))[2:] == (0, ["192.0.2.1"]), "forwarding")
    finally:
        with open("/sys/fs/cgroup/pids/cgroup.procs", "w") as f:
            for task in _procs(group):
                f.write(str(task))
                f.flush()
        wait_for(lambda: not _procs(group), "the test's pids cgroup to empty")
        os.rmdir(group)


def _procs(group: str) -> list[int]:
    try:
        with open(f"{group}/cgroup.procs") as f:
            return [int(line) for line in f]
    except FileNotFoundError:
        return []
