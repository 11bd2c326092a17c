"""The DNS server of one user-defined network: its containers' names, the rest forwarded upstream.

Runs as a small daemon (``python -m ocirt.manager.network.dns``, started by ``dnsd``) bound to
the network's gateway address, port 53, so it is reachable from the network's containers only.
It answers ``A`` queries for container names, ``--network-alias`` names and short ids from the
endpoints table (read on every query, so connect/disconnect need not signal it), and relays
any other query unchanged to the host's resolvers, over UDP or TCP as it came; an answer too
big for a UDP client comes back truncated (TC set), as resolvers expect, to be asked again over
TCP. It exits by itself once its network is gone.
Standard library only: the daemon's start-up time is part of ``network create``.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sqlite3
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ocirt.manager.network.resolv import read_host

TTL = 600
TYPE_A = 1
TYPE_OPT = 41
RCODE_SERVFAIL = 2
FLAG_TC = 0x0200
UDP_PLAIN = 512  # the largest UDP answer to a query without EDNS (RFC 1035 4.2.1)
IDLE_CHECK = 5.0
UPSTREAM_TIMEOUT = 2.0
TCP_IDLE = 10.0  # a TCP client silent this long is dropped (RFC 7766 suggests seconds)
MAX_TASKS = 48  # forwarded queries and TCP clients served at once; beyond, SERVFAIL or close
LOG_LIMIT = 1 << 20  # the log is emptied past this size: a flood of bad packets cannot fill the disk


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


def udp_limit(query: bytes, end: int) -> int:
    """The answer size the client takes over UDP: 512, or what its EDNS OPT record offers
    (the only additional record a query carries, right after the question)."""
    opt = query[end : end + 5]
    if query[10:12] != b"\x00\x00" and len(opt) == 5 and opt[:3] == b"\x00" + struct.pack("!H", TYPE_OPT):
        return max(UDP_PLAIN, int.from_bytes(opt[3:5], "big"))
    return UDP_PLAIN


def fit_udp(reply: bytes, query: bytes, end: int) -> bytes:
    """``reply`` as is if it fits, else its header with TC set and the question alone, so the
    resolver asks again over TCP (RFC 2181 9)."""
    if len(reply) <= udp_limit(query, end) or len(reply) < 12:
        return reply
    flags = struct.unpack("!H", reply[2:4])[0] | FLAG_TC
    return reply[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + query[12:end]


class Server:
    """One UDP socket and one TCP listener on the gateway. Local names are answered in the
    serving thread; a forwarded query or a TCP client gets a thread of its own, at most
    ``MAX_TASKS`` at once. No failure while handling one query ends the server: it is logged
    (to the daemon's stderr) and the next query is served."""

    def __init__(
        self, db_path: str, network_id: str, resolv_path: str, sock: socket.socket, listener: socket.socket
    ) -> None:
        self.db_path = db_path
        self.network_id = network_id
        self.resolv_path = resolv_path
        self.sock = sock
        self.listener = listener
        self.conn = sqlite3.connect(db_path, timeout=5.0, check_same_thread=False)
        self.lock = threading.Lock()
        self.tasks = threading.BoundedSemaphore(MAX_TASKS)
        self.gone = threading.Event()

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

    def local(self, packet: bytes) -> tuple[bytes | None, int]:
        """Our answer and the question's end; (None, end) for a query to forward, and
        (None, 0) for a packet to drop (not a query, or the network is gone)."""
        question = parse_question(packet)
        if question is None or packet[2] & 0x80:
            return None, 0
        name, qtype, end = question
        table = self.names()
        if table is None:
            self.gone.set()
            return None, 0
        addrs = self.lookup(name, table)
        if addrs is None:
            return None, end
        return answer(packet, end, addrs if qtype == TYPE_A else []), end

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

    def on_udp(self, packet: bytes, client: tuple[str, int]) -> None:
        reply, end = self.local(packet)
        if reply is not None:
            self.sock.sendto(fit_udp(reply, packet, end), client)
        elif end and not self.spawn(self.forward_udp, packet, end, client):
            self.sock.sendto(answer(packet, end, [], RCODE_SERVFAIL), client)

    def spawn(self, work: Callable[..., None], *args: Any) -> bool:
        """``work(*args)`` in a thread of its own if a task slot is free; False if none is."""
        if not self.tasks.acquire(blocking=False):
            return False
        try:
            threading.Thread(target=self.task, args=(work, *args), daemon=True).start()
        except BaseException:
            self.tasks.release()
            raise
        return True

    def task(self, work: Callable[..., None], *args: Any) -> None:
        try:
            guarded(work, *args)
        finally:
            self.tasks.release()

    def forward_udp(self, packet: bytes, end: int, client: tuple[str, int]) -> None:
        reply = self.upstream(packet, end, ask_udp)
        self.sock.sendto(fit_udp(reply, packet, end), client)

    def upstream(self, packet: bytes, end: int, ask: Callable[[str, bytes], bytes]) -> bytes:
        """The first host resolver's answer to ``packet`` (IPv4 ones), or SERVFAIL."""
        for server in read_host(self.resolv_path).nameservers:
            if ":" in server:
                continue
            try:
                reply = ask(server, packet)
            except OSError:
                continue
            if reply[:2] == packet[:2]:
                return reply
        return answer(packet, end, [], RCODE_SERVFAIL)

    def on_tcp(self, conn: socket.socket) -> None:
        """Length-prefixed queries (RFC 1035 4.2.2) until the client closes or goes quiet;
        answers are whole, never truncated."""
        with conn:
            conn.settimeout(TCP_IDLE)
            while not self.gone.is_set():
                packet = read_message(conn)
                if packet is None:
                    return
                reply, end = self.local(packet)
                if reply is None and end:
                    reply = self.upstream(packet, end, ask_tcp)
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def serve(self) -> None:
        self.sock.settimeout(0)
        self.listener.settimeout(0)
        while not self.gone.is_set():
            ready, _, _ = select.select([self.sock, self.listener], [], [], IDLE_CHECK)
            if not ready and self.names() is None:
                return
            for sock in ready:
                guarded(self.receive, sock)

    def receive(self, sock: socket.socket) -> None:
        if sock is self.listener:
            conn, _ = self.listener.accept()
            if not self.spawn(self.on_tcp, conn):
                conn.close()
            return
        packet, client = self.sock.recvfrom(65535)
        self.on_udp(packet, client)


def guarded(work: Callable[..., None], *args: Any) -> None:
    """Run one query's work; a failure is logged, never the end of the server."""
    try:
        work(*args)
    except Exception:
        if os.fstat(2).st_size > LOG_LIMIT:
            os.ftruncate(2, 0)
        traceback.print_exc()
        sys.stderr.flush()


def ask_udp(server: str, packet: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
        up.settimeout(UPSTREAM_TIMEOUT)
        up.connect((server, 53))  # connected: an unreachable port fails at once
        up.send(packet)
        return up.recv(65535)


def ask_tcp(server: str, packet: bytes) -> bytes:
    with socket.create_connection((server, 53), timeout=UPSTREAM_TIMEOUT) as up:
        up.sendall(struct.pack("!H", len(packet)) + packet)
        return read_message(up) or b""


def read_message(conn: socket.socket) -> bytes | None:
    """One length-prefixed DNS message; None at end of stream or on a timeout."""
    try:
        head = _read_exact(conn, 2)
        return None if head is None else _read_exact(conn, struct.unpack("!H", head)[0])
    except TimeoutError:
        return None


def _read_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def log_path(pidfile: str) -> str:
    """Where the daemon keeps what went wrong: beside its pidfile."""
    return os.path.splitext(pidfile)[0] + ".log"


def main(argv: list[str]) -> int:
    """``ROOT NETWORK_ID BIND_ADDR PIDFILE RESOLV_CONF``: bind, then detach and serve."""
    root, network_id, bind_addr, pidfile, resolv_path = argv
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((bind_addr, 53))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((bind_addr, 53))
        listener.listen(64)
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
    log = os.open(log_path(pidfile), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    for fd, target in ((0, null), (1, null), (2, log)):
        os.dup2(target, fd)
    os.close(null)
    os.close(log)
    Server(os.path.join(root, "ocirt.db"), network_id, resolv_path, sock, listener).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
