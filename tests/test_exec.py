"""``ocirt exec``: a second process inside a running container, with real containers."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime, cgroup_dirs
from ocirt.runtime.capabilities import NAMES as CAP_NAMES
from support import hostfacts


def wait_for(predicate: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def running(rt: Runtime, edit: Any = None, args: list[str] | None = None) -> tuple[str, str]:
    """A detached container running ``sleep`` (or ``args``); return its id and bundle."""
    cid = rt.new_id()
    bundle = rt.bundle(args or ["sleep", "1000"], edit)
    res = rt("run", "-d", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    return cid, bundle


def proc_status(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(key + ":"))


def cap_mask(*names: str) -> int:
    return sum(1 << CAP_NAMES.index(name) for name in names)


def test_exec_runs_in_the_container_namespaces(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["hostname"] = "exec-host"

    cid, bundle = running(rt, edit)
    with open(os.path.join(bundle, "rootfs/etc/marker"), "w") as f:
        f.write("from the rootfs\n")
    res = rt("exec", cid, "sh", "-c", "hostname; cat /etc/marker; echo $$; ps -o pid,comm")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["exec-host", "from the rootfs"]
    assert 1 < int(lines[2]) < 100, "the shell's pid is not one of the container's pid namespace"
    table = [line.split() for line in lines[4:]]
    assert ["1", "sleep"] in table
    init = rt.state(cid)["pid"]
    for ns in ("pid", "mnt", "net", "uts", "ipc"):
        assert os.readlink(f"/proc/{init}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")


def test_exec_joins_cgroup_and_time_namespaces(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] += [{"type": "cgroup"}, {"type": "time"}]
        c["linux"]["timeOffsets"] = {"monotonic": {"secs": 31536000, "nanosecs": 0}}

    cid, _ = running(rt, edit)
    res = rt(
        "exec", cid, "sh", "-c", "cut -d: -f3 /proc/self/cgroup | sort -u; cat /proc/self/timens_offsets"
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "/", "not at the root of the container's cgroup namespace"
    assert lines[1].split() == ["monotonic", "31536000", "0"]


def test_exec_status_passes_through(rt: Runtime) -> None:
    cid, _ = running(rt)
    assert rt("exec", cid, "sh", "-c", "exit 5").returncode == 5
    assert rt("exec", cid, "true").returncode == 0
    assert rt("exec", cid, "sh", "-c", "kill -KILL $$").returncode == 128 + 9
    assert rt.state(cid)["status"] == "running"


def test_exec_passes_stdio(rt: Runtime) -> None:
    cid, _ = running(rt)
    res = rt("exec", cid, "sh", "-c", "read line; echo got:$line; echo err >&2", input="hello\n")
    assert (res.returncode, res.stdout, res.stderr) == (0, "got:hello\n", "err\n")


def test_exec_forwards_signals(rt: Runtime) -> None:
    cid, bundle = running(rt)
    script = "trap 'exit 42' TERM; touch /tmp/up; while true; do sleep 0.05; done"
    proc = subprocess.Popen([OCIRT, "--root", rt.root, "exec", cid, "sh", "-c", script])
    try:
        wait_for(lambda: os.path.exists(os.path.join(bundle, "rootfs/tmp/up")), "the exec'd shell")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 42
    finally:
        proc.kill()
        proc.wait()


def test_exec_flags_override_the_config_process(rt: Runtime) -> None:
    cid, _ = running(rt)
    script = 'echo "$FOO|$TERM|$PATH"; pwd; id -u; id -g; id -G; cat /proc/self/status'
    res = rt(
        "exec",
        "--env",
        "FOO=bar",
        "-e",
        "PATH=/bin",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1001",
        "--additional-gids",
        "5",
        "-g",
        "6",
        cid,
        "sh",
        "-c",
        script,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:4] == ["bar|xterm|/bin", "/tmp", "1000", "1001"]
    assert sorted(lines[4].split()) == ["1001", "5", "6"]
    status = dict(line.split(":", 1) for line in lines[5:])
    assert int(status["CapEff"], 16) == 0, "a non-root user without capabilities keeps none"
    assert status["NoNewPrivs"].strip() == "1"


def test_exec_process_leads_its_own_session_and_group(rt: Runtime) -> None:
    """As runc's: pid, process group and session (fields 1, 5, 6 of /proc/self/stat) are
    the same, not the caller's (0 in the container's pid namespace)."""
    cid, _ = running(rt)
    res = rt("exec", cid, "cut", "-d", " ", "-f", "1,5,6", "/proc/self/stat")
    assert res.returncode == 0, res.stderr
    pid, pgrp, sid = res.stdout.split()
    assert pid == pgrp == sid and pid != "0", res.stdout


def test_exec_user_keeps_the_config_gid(rt: Runtime) -> None:
    cid, _ = running(rt)
    res = rt("exec", "-u", "1000", cid, "sh", "-c", "id -u; id -g")
    assert res.stdout.split() == ["1000", "0"], res.stderr


def test_exec_cap_adds_to_the_config_sets(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["process"]["capabilities"] = {
            key: ["CAP_CHOWN", "CAP_KILL"] for key in ("bounding", "effective", "permitted")
        }

    cid, _ = running(rt, edit)
    plain = rt("exec", cid, "grep", "Cap", "/proc/self/status")
    added = rt("exec", "--cap", "CAP_NET_ADMIN", "-c", "sys_time", cid, "grep", "Cap", "/proc/self/status")
    assert plain.returncode == 0 and added.returncode == 0, plain.stderr + added.stderr
    before = dict(line.split(":\t") for line in plain.stdout.splitlines())
    after = dict(line.split(":\t") for line in added.stdout.splitlines())
    base = cap_mask("CAP_CHOWN", "CAP_KILL")
    more = base | cap_mask("CAP_NET_ADMIN", "CAP_SYS_TIME")
    assert [int(before[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")] == [base] * 3
    assert [int(after[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")] == [more] * 3
    assert int(after["CapInh"], 16) == 0
    bad = rt("exec", "--cap", "CAP_NOPE", cid, "true")
    assert bad.returncode == 1 and "--cap CAP_NOPE: unknown capability" in bad.stderr


def test_exec_process_file(rt: Runtime) -> None:
    cid, _ = running(rt)
    process = {
        "args": ["sh", "-c", 'echo "$GREETING from $(pwd) as $(id -u)"; exit 3'],
        "env": ["PATH=/bin:/usr/bin", "GREETING=hi"],
        "cwd": "/etc",
        "user": {"uid": 7, "gid": 7},
    }
    path = os.path.join(rt.workdir, "process.json")
    with open(path, "w") as f:
        json.dump(process, f)
    res = rt("exec", "--process", path, cid)
    assert (res.returncode, res.stdout) == (3, "hi from /etc as 7\n"), res.stderr

    refused = rt("exec", "--process", path, cid, "true")
    assert refused.returncode == 1 and "cannot be given with --process" in refused.stderr
    with open(path, "w") as f:
        json.dump({**process, "cwd": "etc"}, f)
    bad = rt("exec", "-p", path, cid)
    assert bad.returncode == 1
    assert bad.stderr == f"ocirt: --process {path}: process.cwd: must be an absolute path, got 'etc'\n"


def test_exec_detach_writes_pid_file_and_joins_the_cgroup(rt: Runtime) -> None:
    cid, _ = running(rt)
    pidfile = os.path.join(rt.workdir, "exec.pid")
    started = time.monotonic()
    res = rt("exec", "--detach", "--pid-file", pidfile, cid, "sleep", "1000")
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 5
    with open(pidfile) as f:
        pid = int(f.read())
    init = rt.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert proc_status(pid, "NSpid").split()[1:] != [], "not inside a child pid namespace"
    dirs = cgroup_dirs(cid)
    assert dirs
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs")) as f:
            members = f.read().split()
        assert str(pid) in members and str(init) in members, d


def test_exec_into_a_created_container(rt: Runtime) -> None:
    """As runc: the init is set up and waiting, so its namespaces can be joined."""
    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "1000"])
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    res = rt("exec", cid, "hostname")
    assert (res.returncode, res.stdout) == (0, "ocirt\n"), res.stderr
    assert rt.state(cid)["status"] == "created"


def test_exec_refuses_stopped_paused_and_unknown_containers(rt: Runtime) -> None:
    from ocirt.runtime.cgroups import load_cgroup

    cid, _ = running(rt)
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        cgroup = load_cgroup(json.load(f)["cgroup"])
    cgroup.freeze()
    try:
        paused = rt("exec", cid, "true")
    finally:
        cgroup.thaw()
    assert paused.returncode == 1
    assert paused.stderr == f"ocirt: cannot exec in container {cid!r}: it is paused (resume it first)\n"

    assert rt("kill", cid, "KILL").returncode == 0
    wait_for(lambda: rt.state(cid)["status"] == "stopped", "the container to stop")
    stopped = rt("exec", cid, "true")
    assert stopped.returncode == 1
    assert stopped.stderr == f"ocirt: cannot exec in container {cid!r}: it has stopped\n"

    unknown = rt("exec", "ocirt-test-nonexistent", "true")
    assert unknown.returncode == 1
    assert unknown.stderr == "ocirt: container 'ocirt-test-nonexistent' does not exist\n"


def test_exec_errors_name_the_cause_and_leave_nothing(rt: Runtime) -> None:
    cid, _ = running(rt)
    cases: list[tuple[list[str], list[str], str]] = [
        ([], ["nosuch"], "exec: process.args[0]: 'nosuch': executable file not found in $PATH"),
        ([], ["/bin/nosuch"], "exec: process.args[0]: /bin/nosuch: no such file or directory"),
        ([], ["/etc/passwd"], "exec: process.args[0]: /etc/passwd: permission denied"),
        (["--cwd", "/nonexistent"], ["true"], "exec: process.cwd: /nonexistent: No such file or directory"),
        (["--cwd", "relative"], ["true"], "exec: process.cwd: must be an absolute path"),
        (["-u", "me"], ["true"], "--user me: expected uid or uid:gid (numbers)"),
        (["-g", "x"], ["true"], "--additional-gids x: expected a non-negative integer"),
        ([], [], "exec: missing command (or --process FILE)"),
    ]
    unchecked = []
    for flag, lsm, enabled in (
        ("--apparmor", "AppArmor", hostfacts.apparmor_enabled()),
        ("--process-label", "SELinux", hostfacts.selinux_enabled()),
    ):
        if enabled:
            unchecked.append(f"{lsm} is enabled, so {flag} is not refused")
        else:
            cases.append(([flag, "p"], ["true"], f"{flag}: {lsm} is not enabled on this host"))
    init = rt.state(cid)["pid"]
    for flags, command, message in cases:
        res = rt("exec", *flags, cid, *command)
        assert res.returncode == 1, (flags, command)
        assert res.stderr.startswith("ocirt: " + message), (flags, command, res.stderr)
        assert len(res.stderr.splitlines()) == 1, res.stderr
    for d in cgroup_dirs(cid):
        with open(os.path.join(d, "cgroup.procs")) as f:
            assert f.read().split() == [str(init)], f"a failed exec left a process in {d}"
    hostfacts.require(not unchecked, "; ".join(unchecked))


def test_exec_process_keeps_only_stdio_and_preserved_fds(rt: Runtime) -> None:
    cid, _ = running(rt)
    res = rt("exec", cid, "ls", "/proc/self/fd")
    assert res.stdout.split() == ["0", "1", "2", "3"], "ls has its directory open as 3"

    with tempfile.TemporaryFile("w+") as shared:
        shared.write("through fd 3\n")
        shared.flush()
        shared.seek(0)
        script = 'cat <&3; ls /proc/self/fd | tr "\\n" " "'
        argv = [OCIRT, "--root", rt.root, "exec", "--preserve-fds", "1", cid, "sh", "-c", script]
        with tempfile.TemporaryFile("w+") as out:
            code = subprocess.call(
                argv, stdout=out, pass_fds=(3,), preexec_fn=lambda: os.dup2(shared.fileno(), 3)
            )
            out.seek(0)
            assert code == 0
            assert out.read() == "through fd 3\n0 1 2 3 4 "


def test_exec_gets_the_container_seccomp_filter(rt: Runtime) -> None:
    """As in runc, every process of the container runs under its filter: loaded before the
    switch to a user without CAP_SYS_ADMIN, or last with no_new_privs."""

    def edit(c: dict[str, Any]) -> None:
        c["process"]["noNewPrivileges"] = False
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        }

    cid, _ = running(rt, edit)
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/d || echo refused"
    for flags, nnp in (([], "0"), (["-u", "1000"], "0"), (["--no-new-privs", "-u", "1000"], "1")):
        res = rt("exec", *flags, cid, "sh", "-c", script)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == ["NoNewPrivs:", nnp, "Seccomp:", "2", "refused"], (flags, res.stdout)
        assert "Operation not permitted" in res.stderr


def read_until_hangup(fd: int, timeout: float = 20) -> str:
    """Everything written to a pty master until its other side is closed (EIO)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError as exc:
            assert exc.errno == errno.EIO
            return out.decode(errors="replace")
        out += data
    raise AssertionError(f"terminal still open after {timeout} s: {out!r}")


def console_mounts(pid: int) -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line for line in f if line.split()[4] == "/dev/console"]


def test_exec_tty_in_the_foreground(rt: Runtime) -> None:
    """ocirt exec -t proxies a new pty of the container to its own terminal (here a pty
    the test holds, as a user's terminal would be)."""
    cid, _ = running(rt)
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 91, 0, 0))
        argv = [OCIRT, "--root", rt.root, "exec", "-t", cid, "sh", "-c", "tty; stty size; exit 3"]
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        slave = -1
        out = read_until_hangup(master)
        assert proc.wait(timeout=10) == 3
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert "/dev/pts/" in out and "24 91" in out, out


@pytest.fixture
def console_listener() -> Iterator[tuple[str, socket.socket]]:
    """A console socket, in a short path (a unix socket path must fit in 108 bytes)."""
    import shutil

    directory = tempfile.mkdtemp(prefix="ocirt-exec-tty-")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path = os.path.join(directory, "console.sock")
        server.bind(path)
        server.listen(1)
        server.settimeout(10)
        yield path, server
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("stdio", ["open", "closed"])
def test_exec_console_socket_session(
    rt: Runtime, console_listener: tuple[str, socket.socket], stdio: str
) -> None:
    """The master of a new pty goes to the console socket; /dev/console stays init's. A
    caller with its stdio closed must not leave ocirt's own descriptors where the pty goes."""
    path, server = console_listener
    cid, _ = running(rt)
    init = rt.state(cid)["pid"]
    consoles = console_mounts(init)
    argv = [OCIRT, "--root", rt.root, "exec", "-d", "-t", "--console-socket", path, "-u", "1000", cid, "sh"]
    closing = 'exec "$0" "$@" <&- >&- 2>&-' if stdio == "closed" else 'exec "$0" "$@"'
    assert subprocess.run(["sh", "-c", closing, *argv], timeout=60).returncode == 0
    conn, _ = server.accept()
    with conn:
        name, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
    assert name == b"/dev/ptmx"
    master = struct.unpack("i", ancdata[0][2])[0]
    try:
        os.write(master, b"echo via-dev-tty > /dev/tty; echo owner=$(stat -c %u $(tty)); exit\n")
        out = read_until_hangup(master)
    finally:
        os.close(master)
    assert "via-dev-tty\r\n" in out and "owner=1000\r\n" in out, out
    assert console_mounts(init) == consoles


def test_exec_terminal_flag_rules(rt: Runtime) -> None:
    cid, _ = running(rt)
    detached = rt("exec", "-d", "-t", cid, "true")
    assert detached.returncode == 1 and "cannot allocate tty" in detached.stderr
    socket_only = rt("exec", "-d", "--console-socket", "/nonexistent.sock", cid, "true")
    assert socket_only.returncode == 1 and "cannot use console socket" in socket_only.stderr


def test_exec_joins_the_user_namespace_first(rt: Runtime, open_dir: str) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "1000"], edit, name=os.path.join(open_dir, "b"))
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    pidfile = os.path.join(rt.workdir, "pid")
    res = rt("exec", "-d", "--pid-file", pidfile, "-u", "5", cid, "sleep", "1000")
    assert res.returncode == 0, res.stderr
    with open(pidfile) as f:
        pid = int(f.read())
    init = rt.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink(f"/proc/{init}/ns/user")
    assert proc_status(pid, "Uid").split() == ["100005"] * 4
    inside = rt("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert inside.stdout.split() == ["0", "0", "100000", "65536"], inside.stderr
