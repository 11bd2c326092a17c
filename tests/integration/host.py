"""Host bookkeeping for the manager tests: start and stop daemons, find and undo what they left.

Each manager module works in a private directory and names its cgroups with a private
token, so anything on the host that mentions either belongs to the test. A few paths the
managers cannot be moved away from (podman's IPAM database in /run/containers, the image
blob cache in /var/lib/containers, the shims' sockets in /run/containerd/s, Docker's
/run/docker/plugins) are removed afterwards only when the test was the one that made them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence

OCIRT = os.path.join(os.path.dirname(sys.executable), "ocirt")
CGROUP_ROOT = "/sys/fs/cgroup"


class Workspace:
    """A private directory and token for one module, and the record of host paths it made."""

    def __init__(self, manager: str, shared_paths: Sequence[str] = (), ocirt_root: str | None = None) -> None:
        self.token = f"ocirt-it-{uuid.uuid4().hex[:8]}"
        self.dir = tempfile.mkdtemp(prefix=f"{self.token}-{manager}-", dir="/tmp")
        self.ocirt_root = ocirt_root or self.path("ocirt-root")
        self._absent = [p for p in shared_paths if not os.path.lexists(p)]

    def path(self, *parts: str) -> str:
        full = os.path.join(self.dir, *parts)
        os.makedirs(full, exist_ok=True)
        return full

    def cleanup(self) -> list[str]:
        """Report what the manager left after its own teardown, then undo everything.

        Parent cgroups are the exception: podman, containerd and Docker all leave the
        (empty) parent they made, and podman its ``conmon`` child; a container's own
        cgroup below it, or any that cannot be removed, counts.
        """
        stray = lingering(self.dir) + in_cgroups(self.token)
        found = [f"process {pid}: {_cmdline(pid)}" for pid in stray]
        found += [f"mount {m}" for m in mounts_under(self.dir)]
        found += [f"ocirt state {cid}" for cid in ocirt_containers(self)]
        found += [f"cgroup {d}" for d in cgroup_dirs(self.token) if _below_parent(d, self.token)]
        kill_pids(processes_mentioning(self.dir) + in_cgroups(self.token))
        for cid in ocirt_containers(self):
            run([OCIRT, "--root", self.ocirt_root, "delete", "--force", cid])
        unmount_under(self.dir)
        remove_cgroups(self.token)
        found += [f"cgroup {d}" for d in cgroup_dirs(self.token) if not _below_parent(d, self.token)]
        shutil.rmtree(self.dir, ignore_errors=True)
        for path in self._absent:
            shutil.rmtree(path, ignore_errors=True)
        return found


def ocirt_containers(ws: Workspace) -> list[str]:
    """Containers in ocirt's root that this workspace made (their bundle is inside it)."""
    if not os.path.isdir(ws.ocirt_root):
        return []
    found = []
    for cid in os.listdir(ws.ocirt_root):
        try:
            with open(os.path.join(ws.ocirt_root, cid, "state.json")) as f:
                ours = ws.dir in f.read()
        except OSError:
            ours = ws.ocirt_root.startswith(ws.dir)
        if ours:
            found.append(cid)
    return found


def attempt(*steps: Callable[[], object]) -> list[str]:
    """Run every teardown step even when one fails (a hung manager command must not keep
    the rest of the cleanup from running); the failures, as lines of the leak report."""
    failed = []
    for step in steps:
        try:
            step()
        except Exception as exc:
            failed.append(f"teardown step failed: {exc!r}"[:500])
    return failed


def run(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 90) -> Result:
    """Output goes to files, not pipes: a daemonized monitor (conmon, a shim) may inherit
    the caller's stdio, and waiting for end-of-file on a pipe would wait for it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, timeout=timeout, text=True
        )
        out.seek(0)
        err.seek(0)
        return Result(list(argv), proc.returncode, out.read(), err.read())


class Result:
    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"{' '.join(self.argv)} -> {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"

    def ok(self) -> Result:
        assert self.returncode == 0, self
        return self


def start_daemon(
    argv: Sequence[str], log: str, ready: Callable[[], bool], timeout: float = 60
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session and wait until ``ready()``; fail with its log if it dies."""
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=f, stderr=f, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_daemon(proc)
            with open(log) as f:
                tail = f.read()[-3000:]
            raise AssertionError(f"{argv[0]} did not come up (status {proc.returncode}):\n{tail}")
        time.sleep(0.2)
    return proc


def stop_daemon(proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """SIGTERM lets the daemon stop its containers and helpers; SIGKILL if it hangs. The wait
    is long: on a loaded machine a ``docker rm`` has taken over 90 s, and a dockerd killed
    before it is done leaves the bind of its data root that it removes as it exits."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (daemons, shims, monitors)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(name))
    return found


def lingering(text: str, grace: float = 10) -> list[int]:
    """Processes still mentioning ``text`` after ``grace`` seconds: a manager's exit hooks
    (podman's ``container cleanup``, a shim winding down) may outlive its command briefly."""
    deadline = time.monotonic() + grace
    while (pids := [p for p in processes_mentioning(text) if not _zombie(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(gone)"


def kill_pids(pids: list[int], timeout: float = 10) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in pids):
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path + "/")]


def unmount_under(path: str) -> None:
    for point in reversed(mounts_under(path)):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def in_cgroups(token: str) -> list[int]:
    """Processes in the test's cgroups (a container's, whose command line names nothing of ours)."""
    pids: set[int] = set()
    for d in cgroup_dirs(token):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return sorted(pids)


def cgroup_dirs(token: str) -> list[str]:
    """Cgroup directories, in every hierarchy, with ``token`` in their path."""
    found = []
    for top in os.listdir(CGROUP_ROOT):
        base = os.path.join(CGROUP_ROOT, top)
        if os.path.islink(base) or not os.path.isdir(base):
            continue
        for dirpath, dirnames, _ in os.walk(base):
            found += [os.path.join(dirpath, d) for d in dirnames if token in os.path.join(dirpath, d)]
    return found


def _below_parent(path: str, token: str) -> bool:
    """A cgroup under the manager's parent (the component named with ``token``), conmon's aside."""
    parts = path.split("/")
    below = parts[next(i for i, p in enumerate(parts) if token in p) + 1 :]
    return bool(below) and below != ["conmon"]


def remove_cgroups(token: str) -> None:
    """rmdir the test's cgroups, children first; a cgroup still holding a process stays (a leak)."""
    clear_unmounted_hierarchies(token)
    for d in sorted(cgroup_dirs(token), key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass


def clear_unmounted_hierarchies(token: str) -> None:
    """podman makes its cgroup directories for every controller in /proc/cgroups, mounted or
    not: where one (hugetlb here) is not, they are plain tmpfs directories under
    /sys/fs/cgroup with a ``tasks`` file in them, which no rmdir (podman's ``pod rm``
    included) can remove until the file is gone."""
    for d in cgroup_dirs(token):
        hierarchy = os.path.join(CGROUP_ROOT, os.path.relpath(d, CGROUP_ROOT).split("/")[0])
        if not os.path.ismount(hierarchy):
            for entry in os.scandir(d):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)


def ocirt_state(root: str, cid: str) -> dict[str, object]:
    """What ocirt itself says about a container a manager made: proof it was the runtime."""
    import json

    res = run([OCIRT, "--root", root, "state", cid]).ok()
    state: dict[str, object] = json.loads(res.stdout)
    return state
