"""Network test helpers: a manager root with names of its own, commands inside a netns, an
"outside" host, and the leak check every network test ends with.

    root = net_root(tmp_path)            # unique prefix, nft table, run dir, resolv.conf
    ...
    cleanup(root)                        # teardown_root, then assert nothing is left

``Outside`` is a namespace joined to the host by a veth (198.51.100.1 host side,
198.51.100.2 inside, a TEST-NET-2 range that only exists on this machine while the test
runs): it serves HTTP on port 8000 (logging client addresses) and answers DNS for
``outside.test``, so NAT and upstream forwarding are tested without a packet leaving the host.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from ocirt.manager import db
from ocirt.manager.network import links, nat, netns, service, settings
from ocirt.manager.network.settings import NetSettings

OUTSIDE_HOST = "198.51.100.1"
OUTSIDE_IP = "198.51.100.2"

FAKE_RESOLVER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1 : i + 1 + q[i]].decode())
        i += q[i] + 1
    qtype = struct.unpack("!H", q[i + 1 : i + 3])[0]
    end = i + 5
    known = ".".join(labels).lower() == "outside.test"
    rcode = 0 if known else 3
    answers = 1 if known and qtype == 1 else 0
    out = q[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, answers, 0, 0) + q[12:end]
    if answers:
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(sys.argv[2])
    s.sendto(out, peer)
"""


def net_root(tmp_path: object) -> str:
    """A manager root whose kernel names are unique to this test."""
    root = os.path.join(str(tmp_path), "root")
    tag = secrets.token_hex(3)
    resolv = os.path.join(str(tmp_path), "resolv.conf")
    with open(resolv, "w") as f:
        # loopback only: nothing is ever forwarded off this machine unless a test adds Outside
        f.write("nameserver 127.0.0.1\nsearch test.internal\noptions ndots:1\n")
    settings.configure(root, prefix=f"nt{tag[:5]}", nft_table=f"ocirt_t{tag}", run_dir=f"/run/ocirt/t-{tag}")
    settings.configure(root, resolv_conf=resolv)
    return root


def set_upstream(root: str, nameserver: str) -> None:
    with open(settings.load(root).resolv_conf, "w") as f:
        f.write(f"nameserver {nameserver}\nsearch test.internal\n")


def leftovers(cfg: NetSettings, root: str) -> list[str]:
    found = [f"link {name}" for name in links.names_with_prefix(cfg.prefix)]
    if nat.table_exists(cfg.nft_table):
        found.append(f"nft table {cfg.nft_table}")
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if cfg.run_dir in line]
    found += [f"process {pid}" for pid in pids_mentioning(os.path.abspath(root))]
    if os.path.exists(cfg.run_dir):
        found.append(f"directory {cfg.run_dir}")
    return found


def pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return [p for p in found if p != os.getpid()]


def cleanup(root: str) -> None:
    """Undo everything, then fail if any kernel object, mount or daemon of the root remains."""
    cfg = settings.load(root)
    try:
        service.teardown_root(root)
    finally:
        db.close_all()
    left = leftovers(cfg, root)
    assert not left, f"leaked: {left}"


def in_ns(path: str, *cmd: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", *cmd], capture_output=True, text=True, timeout=timeout)


def ping(path: str, addr: str) -> bool:
    return in_ns(path, "busybox", "ping", "-c", "1", "-W", "2", addr).returncode == 0


def wget(path: str, url: str) -> subprocess.CompletedProcess[str]:
    """An HTTP GET from inside ``path`` (curl: Debian's busybox 1.35 ``wget -T`` segfaults)."""
    return in_ns(path, "curl", "-s", "-f", "-m", "3", url)


def nslookup(path: str, name: str, server: str) -> subprocess.CompletedProcess[str]:
    return in_ns(path, "busybox", "nslookup", name, server)


class Daemon:
    """A process started inside a netns, stopped by its own PID."""

    def __init__(self, path: str, cmd: list[str], log: str) -> None:
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net={path}", *cmd], stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def output(self) -> str:
        with open(self.log) as f:
            return f.read()


def httpd(path: str, docroot: str, log: str, port: int = 80) -> Daemon:
    """busybox httpd in the foreground inside ``path``; returns once it answers."""
    d = Daemon(path, ["busybox", "httpd", "-f", "-p", str(port), "-h", docroot], log)
    wait_for(lambda: wget(path, f"http://127.0.0.1:{port}/").returncode == 0, f"httpd in {path}")
    return d


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Outside:
    """A host beyond the container networks, living in a namespace of the test's own."""

    def __init__(self, root: str, workdir: str) -> None:
        cfg = settings.load(root)
        self.path = f"{cfg.run_dir}-outside"
        self.host_if = f"{cfg.prefix}o"
        self.daemons: list[Daemon] = []
        try:
            self._start(workdir)
        except BaseException:
            self.close()
            raise

    def _start(self, workdir: str) -> None:
        netns.create(self.path)
        subprocess.run(
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", self.path],
            check=True,
        )
        subprocess.run(["ip", "addr", "add", f"{OUTSIDE_HOST}/24", "dev", self.host_if], check=True)
        subprocess.run(["ip", "link", "set", self.host_if, "up"], check=True)
        in_ns(self.path, "ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0")
        in_ns(self.path, "ip", "link", "set", "eth0", "up")
        www = os.path.join(workdir, "outside-www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("outside says hi\n")
        self.web = Daemon(
            self.path,
            [sys.executable, "-u", "-m", "http.server", "8000", "--bind", OUTSIDE_IP, "--directory", www],
            os.path.join(workdir, "outside-http.log"),
        )
        self.daemons.append(self.web)
        dns = Daemon(
            self.path,
            [sys.executable, "-u", "-c", FAKE_RESOLVER, OUTSIDE_IP, OUTSIDE_IP],
            os.path.join(workdir, "outside-dns.log"),
        )
        self.daemons.append(dns)
        wait_for(lambda: "ready" in dns.output(), "the outside resolver")
        wait_for(
            lambda: wget(self.path, f"http://{OUTSIDE_IP}:8000/").returncode == 0, "the outside web server"
        )

    def close(self) -> None:
        for d in self.daemons:
            d.stop()
        netns.remove(self.path)  # the veth pair dies with the namespace
        links.delete(self.host_if)
