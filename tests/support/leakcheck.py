"""What the suite leaves on the host: its processes, and the kernel objects found at the end
of the run that were not there at its start (mounts, network namespaces, links, nft tables,
cgroups, and a changed ``net.ipv4.ip_forward``).

Every process a test starts inherits ``OCIRT_TEST_SESSION``, so a leftover process is
known to be this run's wherever it was reparented. Kernel objects carry no such mark: when
another pytest ran on this machine meanwhile (a shared developer machine), new objects may
be its own, and they are reported as possible leaks instead of failing this run.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import uuid
from dataclasses import dataclass, field

MARK = "OCIRT_TEST_SESSION"


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]


def _ancestors() -> set[int]:
    """This run's parents (``timeout pytest ...``, a shell): they name pytest but are this run."""
    found: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        stat = _read(f"/proc/{pid}/stat")
        pid = int(stat.rsplit(b")", 1)[1].split()[1]) if stat else 0
    return found


def _is_pytest(cmdline: bytes) -> bool:
    """A pytest run, by its program or ``-m pytest``: not any process whose arguments merely
    name a path under pytest's temporary directory (a container, a shim, a daemon of ours)."""
    argv = cmdline.split(b"\0")[:4]
    if any(os.path.basename(a) in (b"pytest", b"py.test") for a in argv):
        return True
    return any(a == b"-m" and b == b"pytest" for a, b in itertools.pairwise(argv))


def _comm(pid: int) -> str:
    return _read(f"/proc/{pid}/comm").decode(errors="replace").strip()


def _mentions(data: bytes, path: str) -> bool:
    """``path`` itself or anything under it, as one argument or environment value."""
    return re.search(re.escape(path.encode()) + rb"(?:/|\0|:|$)", data) is not None


def processes_of(paths: list[str]) -> list[str]:
    """Processes whose root, working directory, command line or environment lies under one
    of ``paths``."""
    found = []
    for pid in _pids():
        try:
            dirs = (os.readlink(f"/proc/{pid}/root"), os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        text = _read(f"/proc/{pid}/cmdline") + b"\0" + _read(f"/proc/{pid}/environ")
        if any(_mentions(text, p) or any(d == p or d.startswith(p + "/") for d in dirs) for p in paths):
            found.append(f"process {pid} ({_comm(pid)})")
    return found


def kill(described: list[str]) -> None:
    """SIGKILL the processes ``processes_of`` described (this run's own, by PID)."""
    for entry in described:
        try:
            os.kill(int(entry.split()[1]), signal.SIGKILL)
        except ProcessLookupError:
            continue


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {" ".join(line.split()[i] for i in (0, 4)) for line in f}


def _cgroups() -> set[str]:
    found = set()
    with open("/proc/self/mountinfo") as f:
        tops = [line.split()[4] for line in f if line.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")]
    for top in tops:
        for dirpath, dirnames, _ in os.walk(top):
            found |= {os.path.join(dirpath, d) for d in dirnames}
    return found


def _nft_tables() -> set[str]:
    try:
        res = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    except FileNotFoundError:
        return set()
    return set(res.stdout.splitlines())


IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def ip_forward() -> str:
    return _read(IP_FORWARD).decode().strip()


def bridges() -> list[str]:
    return [n for n in os.listdir("/sys/class/net") if os.path.isdir(f"/sys/class/net/{n}/bridge")]


def _objects() -> set[str]:
    """The host's kernel objects, each as "kind name"."""
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return (
        {f"mount {m}" for m in _mounts()}
        | {f"netns {n}" for n in netns}
        | {f"link {n}" for n in os.listdir("/sys/class/net")}
        | {f"nft {t}" for t in _nft_tables()}
        | {f"cgroup {c}" for c in _cgroups()}
        | {f"sysctl net.ipv4.ip_forward={ip_forward()}"}
    )


@dataclass
class Session:
    """One run's mark, its starting snapshot and the other pytest runs seen meanwhile."""

    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    before: set[str] = field(default_factory=_objects)
    others: set[int] = field(default_factory=set)

    def watch(self) -> None:
        """Remember other pytest runs alive now (cheap: command lines only)."""
        mine = _ancestors()
        for pid in _pids():
            if pid not in mine and _is_pytest(_read(f"/proc/{pid}/cmdline")) and not self.ours(pid):
                self.others.add(pid)

    def ours(self, pid: int) -> bool:
        return f"{MARK}={self.mark}".encode() in _read(f"/proc/{pid}/environ").split(b"\0")

    def processes(self) -> list[str]:
        return [f"process {pid} ({_comm(pid)})" for pid in _pids() if self.ours(pid)]

    def new_objects(self) -> list[str]:
        return sorted(_objects() - self.before)
