"""The DNS server of one user-defined network: its containers' names, the rest forwarded upstream.

Runs as a small daemon (``python -m ocirt.manager.network.dns``, started by ``dnsd``) bound to
the network's gateway address, port 53, so it is reachable from the network's containers only.
It answers ``A`` queries for container names, ``--network-alias`` names and short ids from the
endpoints table (read on every query, so connect/disconnect need not signal it), and relays
any other query unchanged to the host's resolvers. It exits by itself once its network is gone.
Standard library only: the daemon's start-up time is part of ``network create``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import sys
import threading

from ocirt.manager.network.resolv import read_host

TTL = 600
TYPE_A = 1
RCODE_SERVFAIL = 2
IDLE_CHECK = 5.0
UPSTREAM_TIMEOUT = 2.0


def parse_question(packet: bytes) -> tuple[str, int, int] | None:
    """(lower-case name without trailing dot, qtype, end offset of the question) or None."""
    if len(packet) < 12 or struct.unpack("!H", packet[4:6])[0] != 1:
        return None
    labels, pos = [], 12
    while pos < len(packet):
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length > 63:
            return None  # compression pointers never appear in a query's only question
        labels.append(packet[pos : pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(packet):
        return None
    qtype = struct.unpack("!H", packet[pos : pos + 2])[0]
    return ".".join(labels).lower(), qtype, pos + 4


def answer(packet: bytes, end: int, addrs: list[str], rcode: int = 0) -> bytes:
    """A response echoing the question, with one A record per address (authoritative)."""
    flags = 0x8400 | 0x0080 | (struct.unpack("!H", packet[2:4])[0] & 0x0100) | rcode
    header = packet[:2] + struct.pack("!HHHHH", flags, 1, len(addrs), 0, 0)
    records = b"".join(struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, TTL, 4) + socket.inet_aton(a) for a in addrs)
    return header + packet[12:end] + records


class Server:
    def __init__(self, db_path: str, network_id: str, resolv_path: str, sock: socket.socket) -> None:
        self.db_path = db_path
        self.network_id = network_id
        self.resolv_path = resolv_path
        self.sock = sock
        self.conn = sqlite3.connect(db_path, timeout=5.0, check_same_thread=False)
        self.lock = threading.Lock()

    def names(self) -> dict[str, list[str]] | None:
        """Name to addresses on this network, or None when the network was removed."""
        if not os.path.exists(self.db_path):
            return None  # the whole root was removed: an open handle would keep reading the old file
        with self.lock:
            if self.conn.execute("SELECT 1 FROM networks WHERE id=?", (self.network_id,)).fetchone() is None:
                return None
            rows = self.conn.execute(
                "SELECT container_id, ip, name, aliases FROM endpoints WHERE network_id=?", (self.network_id,)
            ).fetchall()
        table: dict[str, list[str]] = {}
        for cid, ip, name, aliases in rows:
            for key in {cid, cid[:12], name, *json.loads(aliases)}:
                if key:
                    table.setdefault(key.lower(), []).append(ip)
        return table

    def handle(self, packet: bytes, client: tuple[str, int]) -> None:
        question = parse_question(packet)
        if question is None:
            return
        name, qtype, end = question
        table = self.names()
        if table is None:
            raise SystemExit(0)
        addrs = self.lookup(name, table)
        if addrs is not None:
            self.sock.sendto(answer(packet, end, addrs if qtype == TYPE_A else []), client)
            return
        threading.Thread(target=self.forward, args=(packet, end, client), daemon=True).start()

    def lookup(self, name: str, table: dict[str, list[str]]) -> list[str] | None:
        """A container name, also with one of the search domains containers inherit from the
        host appended (resolvers try ``name.domain`` first while ``ndots`` says so)."""
        if name in table:
            return table[name]
        for domain in read_host(self.resolv_path).search:
            suffix = "." + domain.lower().rstrip(".")
            if name.endswith(suffix) and name[: -len(suffix)] in table:
                return table[name[: -len(suffix)]]
        return None

    def forward(self, packet: bytes, end: int, client: tuple[str, int]) -> None:
        for upstream in read_host(self.resolv_path).nameservers:
            if ":" in upstream:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(UPSTREAM_TIMEOUT)
                try:
                    up.connect((upstream, 53))  # connected: an unreachable port fails at once
                    up.send(packet)
                    reply = up.recv(65535)
                except OSError:
                    continue
            if reply[:2] == packet[:2]:
                self.sock.sendto(reply, client)
                return
        self.sock.sendto(answer(packet, end, [], RCODE_SERVFAIL), client)

    def serve(self) -> None:
        self.sock.settimeout(IDLE_CHECK)
        while True:
            try:
                packet, client = self.sock.recvfrom(4096)
            except TimeoutError:
                if self.names() is None:
                    return
                continue
            self.handle(packet, client)


def main(argv: list[str]) -> int:
    """``ROOT NETWORK_ID BIND_ADDR PIDFILE RESOLV_CONF``: bind, then detach and serve."""
    root, network_id, bind_addr, pidfile, resolv_path = argv
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((bind_addr, 53))
    except OSError as exc:
        print(f"cannot listen on {bind_addr}:53: {exc.strerror}", file=sys.stderr)
        return 1
    pid = os.fork()
    if pid:
        tmp = f"{pidfile}.tmp"
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, pidfile)
        return 0
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    Server(os.path.join(root, "ocirt.db"), network_id, resolv_path, sock).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
