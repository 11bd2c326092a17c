"""The runtime's own process and host fds are out of a container's reach.

CVE-2019-5736 class: until ``execve``, init and exec's process are the host's Python
interpreter inside the container's pid namespace, so ``/proc/<pid>/exe`` there is the host's
python binary. The first containers here have Docker's default capabilities (no
CAP_SYS_PTRACE), root as their user, and run code that tries to reach that binary while the
runtime is still in Python: a created container's init (blocked on its exec fifo), and
exec's process (its ``$PATH`` search made long, to widen the window a scanning loop races
against). The last ones hold CAP_SYS_PTRACE, so they do reach it; they must never get a
descriptor that writes to it, then or after the runtime is gone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime
from ocirt.manager.images.bundle import DOCKER_CAPS

INTERPRETER = os.path.realpath(sys.executable)

# For every other process in sight: what of its /proc entry this root shell could reach
# (listing a non-dumpable process's fd directory is allowed; following its links is not).
PROBE = r"""
for p in /proc/[0-9]*; do
  n=${p#/proc/}
  [ "$n" = "$$" ] && continue
  read comm < $p/comm 2>/dev/null || continue
  exe=$(readlink $p/exe 2>/dev/null) && echo "$n $comm readlink $exe"
  (exec 3< $p/exe) 2>/dev/null && echo "$n $comm read"
  (exec 3>> $p/exe) 2>/dev/null && echo "$n $comm write"
  ls $p/cwd/ > /dev/null 2>&1 && echo "$n $comm cwd"
  ls $p/root/ > /dev/null 2>&1 && echo "$n $comm root"
  for f in $p/fd/*; do t=$(readlink $f 2>/dev/null) && echo "$n $comm fd $t"; done
done
echo done
"""


def _is_interpreter(path: str) -> bool:
    """The same file as the host's interpreter (the runtime runs it through another mount)."""
    st, host = os.stat(path), os.stat(INTERPRETER)
    return (st.st_dev, st.st_ino) == (host.st_dev, host.st_ino)


def docker_like(c: dict[str, Any]) -> None:
    c["process"]["capabilities"] = {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")}


def all_caps_in_a_user_namespace(c: dict[str, Any]) -> None:
    """No capabilities list: every capability, but in the container's own user namespace;
    time offsets make the intermediate dumpable again to write them (see intermediate.py)."""
    c["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
    c["linux"]["timeOffsets"] = {"monotonic": {"secs": 3600, "nanosecs": 0}}
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.mark.parametrize("edit", [docker_like, all_caps_in_a_user_namespace])
def test_created_init_cannot_be_reached_from_the_container(rt: Runtime, open_dir: str, edit: Any) -> None:
    cid = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["sleep", "1000"], edit, name=os.path.join(open_dir, "b")), cid)
    assert res.returncode == 0, res.stderr
    init = rt.state(cid)["pid"]
    assert _is_interpreter(f"/proc/{init}/exe"), "init should still be the runtime"

    res = rt("exec", cid, "sh", "-c", PROBE)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == "done"
    reached = [line for line in lines if line.startswith("1 ")]
    assert reached == [], f"the container reached its init while it was the runtime: {reached}"
    assert not any("python" in line for line in lines), lines
    assert _is_interpreter(f"/proc/{init}/exe"), "the probe must run while init waits"


@pytest.fixture
def scanner(rt: Runtime) -> Iterator[tuple[str, str]]:
    """A container whose init loops over /proc, logging any runtime process it can reach."""
    script = r"""
    while :; do
      for p in /proc/[0-9]*; do
        [ -r $p/exe ] || continue
        read comm < $p/comm 2>/dev/null || continue
        case $comm in sh|sleep|true|cat) continue;; esac
        echo "${p#/proc/} $comm" >> /tmp/reached
        (exec 3>> $p/exe) 2>> /tmp/reached && echo "${p#/proc/} opened for writing" >> /tmp/reached
      done
    done
    """
    cid = rt.new_id()
    bundle = rt.bundle(["sh", "-c", script], docker_like)
    res = rt("run", "-d", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    yield cid, os.path.join(bundle, "rootfs/tmp/reached")


def test_exec_process_cannot_be_reached_while_it_is_the_runtime(
    rt: Runtime, scanner: tuple[str, str]
) -> None:
    cid, reached = scanner
    long_path = ":".join(["/nowhere"] * 4000 + ["/bin"])
    for _ in range(6):
        res = rt("exec", "--env", f"PATH={long_path}", cid, "true")
        assert res.returncode == 0, res.stderr
    time.sleep(0.2)
    found = ""
    if os.path.exists(reached):
        with open(reached) as f:
            found = f.read()
    assert found == "", f"the container reached a runtime process:\n{found}"


def test_host_interpreter_cannot_be_overwritten_by_path(rt: Runtime) -> None:
    """By path, the host's python is not there to overwrite: appending to its names (and to
    /proc/self/exe) inside reaches other files, or none, and the host's is untouched."""
    before = os.stat(INTERPRETER)
    paths = [INTERPRETER, sys.executable, "/usr/bin/python3", "/proc/self/exe"]
    script = "; ".join(
        f"echo owned 2>/dev/null >> {p}; stat -L -c '%d:%i' {p} 2>/dev/null || echo missing" for p in paths
    )
    res = rt("run", "--bundle", rt.bundle(["sh", "-c", script], docker_like), rt.new_id())
    assert res.returncode == 0, res.stderr
    seen = res.stdout.split()
    assert len(seen) == len(paths), seen
    assert f"{before.st_dev}:{before.st_ino}" not in seen
    after = os.stat(INTERPRETER)
    assert (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )


def _fds_seen(output: str) -> list[int]:
    return sorted(int(x) for x in output.split())


@pytest.fixture
def stray_fds() -> Iterator[list[int]]:
    """Inheritable fds of ours, above what --preserve-fds passes, that must not get in."""
    opened = []
    for _ in range(3):
        fd = os.open("/etc/hostname", os.O_RDONLY)
        opened.append(fcntl.fcntl(fd, fcntl.F_DUPFD, 30))
        os.close(fd)
    try:
        yield opened
    finally:
        for fd in opened:
            os.close(fd)


def _ocirt(rt: Runtime, args: list[str], preserved: int, stray: list[int]) -> str:
    """``ocirt`` with fds 3.. (``preserved`` of them pipes made for the purpose) and ``stray``
    inherited; returns its stdout."""
    pipes = [os.pipe() for _ in range(preserved)]
    keep = [fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 50) for r, _ in pipes]

    def arrange() -> None:
        for i, fd in enumerate(keep):
            os.dup2(fd, 3 + i)

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            code = subprocess.call(
                [OCIRT, "--root", rt.root, *args],
                stdout=out,
                stderr=err,
                pass_fds=[*range(3, 3 + preserved), *stray],
                preexec_fn=arrange,
                close_fds=True,
                timeout=60,
            )
        finally:
            for fd in [*keep, *(fd for pair in pipes for fd in pair)]:
                os.close(fd)
        out.seek(0)
        err.seek(0)
        assert code == 0, err.read()
        return out.read()


LIST_FDS = ["sh", "-c", "exec ls /proc/self/fd"]


@pytest.mark.parametrize("preserved", [0, 2])
def test_only_stdio_and_preserved_fds_reach_the_container(
    rt: Runtime, stray_fds: list[int], preserved: int
) -> None:
    """``ls`` lists its own directory fd too: one more than the container was given."""
    expected = list(range(3 + preserved + 1))
    flags = ["--preserve-fds", str(preserved)] if preserved else []

    out = _ocirt(rt, ["run", *flags, "--bundle", rt.bundle(LIST_FDS), rt.new_id()], preserved, stray_fds)
    assert _fds_seen(out) == expected, f"run: {out}"

    cid = rt.new_id()
    bundle = rt.bundle(["sh", "-c", "exec ls /proc/self/fd > /tmp/fds"])
    _ocirt(rt, ["create", *flags, "--bundle", bundle, cid], preserved, stray_fds)
    _ocirt(rt, ["start", cid], 0, stray_fds)
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with open(os.path.join(bundle, "rootfs/tmp/fds")) as f:
        assert _fds_seen(f.read()) == expected, "create + start"

    running = rt.new_id()
    res = rt("run", "-d", "--bundle", rt.bundle(["sleep", "1000"]), running)
    assert res.returncode == 0, res.stderr
    out = _ocirt(rt, ["exec", *flags, running, *LIST_FDS], preserved, stray_fds)
    assert _fds_seen(out) == expected, f"exec: {out}"


@pytest.mark.parametrize("preserved", [0, 2])
def test_a_created_init_holds_no_descriptor_of_its_caller(rt: Runtime, tmp_path: Any, preserved: int) -> None:
    """As ``flock LOCK ocirt create``: the caller's lock is free while the container sits in
    "created", and of what the caller passed init holds only stdio and --preserve-fds."""
    lock_path = str(tmp_path / "lock")
    open(lock_path, "w").close()
    kept = [os.pipe() for _ in range(preserved)]
    stray_r, stray_w = os.pipe()

    def arrange() -> None:
        lock = os.open(lock_path, os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX)
        for fd, to in ((lock, 40), (stray_r, 41), *((r, 3 + i) for i, (r, _) in enumerate(kept))):
            os.dup2(fd, to)

    flags = ["--preserve-fds", str(preserved)] if preserved else []
    cid = rt.new_id()
    try:
        with tempfile.TemporaryFile("w+") as err:  # init keeps stdio: no pipe for it
            code = subprocess.call(
                [OCIRT, "--root", rt.root, "create", *flags, "--bundle", rt.bundle(["true"]), cid],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=arrange,  # dup2 makes them inheritable; the rest of ours are close-on-exec
                close_fds=False,
                timeout=60,
            )
            err.seek(0)
            assert code == 0, err.read()
        init = rt.state(cid)["pid"]
        held = {}
        for name in os.listdir(f"/proc/{init}/fd"):
            try:
                st = os.stat(f"/proc/{init}/fd/{name}")
            except FileNotFoundError:
                continue
            held[(st.st_dev, st.st_ino)] = int(name)
        ours = {(st.st_dev, st.st_ino): what for what, st in _objects(lock_path, kept, stray_r).items()}
        found = {what: held[key] for key, what in ours.items() if key in held}
        assert found == {f"kept{i}": 3 + i for i in range(preserved)}
        probe = os.open(lock_path, os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if init kept it
        finally:
            os.close(probe)
        assert rt.state(cid)["status"] == "created"
    finally:
        rt("delete", "--force", cid)
        for fd in (stray_r, stray_w, *(fd for pair in kept for fd in pair)):
            os.close(fd)


def _objects(lock_path: str, kept: list[tuple[int, int]], stray: int) -> dict[str, os.stat_result]:
    found = {"lock": os.stat(lock_path), "stray": os.fstat(stray)}
    for i, (r, _) in enumerate(kept):
        found[f"kept{i}"] = os.fstat(r)
    return found


def _with_host_dir_as_fd3(rt: Runtime, args: list[str], host_dir: str) -> subprocess.CompletedProcess[str]:
    """``ocirt args`` holding an fd of ``host_dir`` as 3, passed on with --preserve-fds."""
    fd = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.call(
                [OCIRT, "--root", rt.root, *args],
                stdout=out,
                stderr=err,
                pass_fds=[3],
                preexec_fn=lambda: os.dup2(fd, 3),
                timeout=60,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, code, out.read(), err.read())
    finally:
        os.close(fd)


ESCAPE_BY_CWD = ["sh", "-c", "ls; touch escaped"]


def test_cwd_through_a_preserved_host_fd_is_refused(rt: Runtime, tmp_path: Any) -> None:
    """CVE-2024-21626 class: ``/proc/self/fd/3`` as the cwd, 3 a host directory the caller
    passes with --preserve-fds, would start the program on the host; runc refuses the cwd
    once the kernel reports it unreachable from the container's root."""
    host_dir = str(tmp_path)
    with open(os.path.join(host_dir, "host-marker"), "w"):
        pass

    def cwd_fd(c: dict[str, Any]) -> None:
        c["process"]["cwd"] = "/proc/self/fd/3"

    res = _with_host_dir_as_fd3(
        rt,
        ["run", "--preserve-fds", "1", "--bundle", rt.bundle(ESCAPE_BY_CWD, cwd_fd), rt.new_id()],
        host_dir,
    )
    assert "host-marker" not in res.stdout
    assert not os.path.exists(os.path.join(host_dir, "escaped")), "run started on the host"
    assert res.returncode != 0
    assert "process.cwd" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr

    cid = rt.new_id()
    started = rt("run", "-d", "--bundle", rt.bundle(["sleep", "1000"]), cid)
    assert started.returncode == 0, started.stderr
    res = _with_host_dir_as_fd3(
        rt, ["exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", cid, *ESCAPE_BY_CWD], host_dir
    )
    assert "host-marker" not in res.stdout
    assert not os.path.exists(os.path.join(host_dir, "escaped")), "exec started on the host"
    assert res.returncode != 0
    assert "process.cwd" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


@pytest.fixture(scope="module")
def throwaway_ocirt(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``ocirt`` installed (by the installer ``make install`` uses) for a copy of the
    interpreter in a venv of its own, so that an attack that succeeds writes to nothing that
    matters: the runtime processes' ``/proc/<pid>/exe`` is this copy."""
    home = str(tmp_path_factory.mktemp("interpreter"))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    os.mkdir(os.path.join(home, "bin"))
    os.makedirs(os.path.join(home, "lib", version))
    shutil.copy2(INTERPRETER, os.path.join(home, "bin", version))
    os.symlink(sysconfig.get_paths()["purelib"], os.path.join(home, "lib", version, "site-packages"))
    with open(os.path.join(home, "pyvenv.cfg"), "w") as f:
        f.write(f"home = {os.path.dirname(INTERPRETER)}\ninclude-system-site-packages = false\n")
    launcher = os.path.join(home, "bin", "ocirt")
    python = os.path.join(home, "bin", version)
    subprocess.run([python, "-m", "ocirt.runtime.launcher", launcher], check=True, timeout=120)
    return launcher


# Holds every process it can reach by its exe (read-only, which CAP_SYS_PTRACE allows),
# tries to open it for writing, then keeps trying to reopen the descriptor it holds for
# writing (the published exploit: writable once nothing runs the binary any more).
HOLDER = r"""
seen=" "
while :; do
  for p in /proc/[0-9]*; do
    n=${p#/proc/}
    case "$seen" in *" $n "*) continue;; esac
    seen="$seen$n "
    read comm < $p/comm 2>/dev/null || continue
    case $comm in sh|sleep|usleep|true|cat) continue;; esac
    (
      exec 3< $p/exe 2>/dev/null || exit 0
      echo "$n held" >> /tmp/log
      (exec 4>> $p/exe) 2>/dev/null && echo "$n opened-for-writing" >> /tmp/log
      i=0
      while [ $i -lt 60 ]; do
        (exec 4>> /proc/self/fd/3) 2>/dev/null && { echo "$n reopened-for-writing" >> /tmp/log; exit 0; }
        usleep 50000
        i=$((i+1))
      done
      echo "$n refused" >> /tmp/log
    ) &
  done
done
"""


def with_ptrace(c: dict[str, Any]) -> None:
    """Docker's capabilities plus CAP_SYS_PTRACE, which users grant for debuggers."""
    caps = [*DOCKER_CAPS, "CAP_SYS_PTRACE"]
    c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}


def _log_lines(log: str) -> list[str]:
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return f.read().splitlines()


def _verdicts(log: str, timeout: float = 15) -> list[str]:
    """The holder's log once every process it held has its verdict."""
    deadline = time.monotonic() + timeout
    while True:
        lines = _log_lines(log)
        held = {line.split()[0] for line in lines if line.endswith(" held")}
        done = {line.split()[0] for line in lines if not line.endswith(" held")}
        if held <= done or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.fixture
def holder(rt: Runtime, throwaway_ocirt: str) -> tuple[str, str, int]:
    """A CAP_SYS_PTRACE container running HOLDER: (id, its log on the host, its init's pid)."""
    rt.command = [throwaway_ocirt]
    cid = rt.new_id()
    bundle = rt.bundle(["sh", "-c", HOLDER], with_ptrace)
    res = rt("run", "-d", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    return cid, os.path.join(bundle, "rootfs/tmp/log"), rt.state(cid)["pid"]


def _assert_never_writable(lines: list[str]) -> None:
    assert any(line.endswith(" held") for line in lines), f"the race was never won: {lines}"
    writable = [line for line in lines if "for-writing" in line]
    assert writable == [], f"a writable descriptor to the runtime's interpreter: {writable}"


def test_ptrace_capable_container_racing_exec_gets_no_writable_interpreter(
    rt: Runtime, holder: tuple[str, str, int]
) -> None:
    cid, log, _ = holder
    long_path = ":".join(["/nowhere"] * 4000 + ["/bin"])
    for _ in range(4):
        res = rt("exec", "--env", f"PATH={long_path}", cid, "true")
        assert res.returncode == 0, res.stderr
    _assert_never_writable(_verdicts(log))


def test_ptrace_capable_container_sharing_its_pid_namespace_gets_no_writable_interpreter(
    rt: Runtime, holder: tuple[str, str, int]
) -> None:
    """A created init waits in the container's pid namespace, as the runtime, until start."""
    _, log, pid = holder

    def join(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [
            {"type": "pid", "path": f"/proc/{pid}/ns/pid"} if ns["type"] == "pid" else ns
            for ns in c["linux"]["namespaces"]
        ]

    waiting = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["true"], join), waiting)
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 10
    while not any(line.endswith(" held") for line in _log_lines(log)) and time.monotonic() < deadline:
        time.sleep(0.05)
    res = rt("delete", "--force", waiting)
    assert res.returncode == 0, res.stderr
    _assert_never_writable(_verdicts(log))
