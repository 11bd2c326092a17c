"""linux.seccomp in real containers: actions, errno values, argument conditions, the early
and late load points, profile errors, and SCMP_ACT_NOTIFY with an agent in this process."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Runtime, cgroup_dirs

# <linux/seccomp.h>, checked against the kernel headers with a C compiler.
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
NOTIF = struct.Struct("=QIIiIQ6Q")  # struct seccomp_notif (with struct seccomp_data)
NOTIF_RESP = struct.Struct("=QqiI")  # struct seccomp_notif_resp
NR_MKDIR, NR_MKDIRAT = 83, 258  # x86_64
SIGSYS = 31

# What busybox-static needs to start, print and exit; the rest of its calls may fail.
BUSYBOX_MINIMUM = [
    "execve", "brk", "arch_prctl", "set_tid_address", "mprotect", "write", "writev",
    "exit_group", "close", "rt_sigaction", "getpid", "getppid", "fcntl", "dup2", "wait4",
]  # fmt: skip


def profile(**fields: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", **fields}


def deny(names: list[str], **fields: Any) -> dict[str, Any]:
    return {"names": names, "action": "SCMP_ACT_ERRNO", **fields}


def run(
    rt: Runtime, args: list[str], seccomp: dict[str, Any], **process: Any
) -> subprocess.CompletedProcess[str]:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = seccomp
        c["process"].update(process)

    return rt("run", "--bundle", rt.bundle(args, edit), rt.new_id())


def test_errno_rule_blocks_only_its_syscalls(rt: Runtime) -> None:
    script = (
        "mkdir /tmp/x; echo rc=$?; echo ok > /tmp/y && cat /tmp/y; grep -E '^(Seccomp|NoNew)' /proc/1/status"
    )
    res = run(rt, ["sh", "-c", script], profile(syscalls=[deny(["mkdir", "mkdirat"])]))
    assert res.returncode == 0, res.stderr
    assert res.stderr == "mkdir: can't create directory '/tmp/x': Operation not permitted\n"
    assert res.stdout.split("\n")[:4] == ["rc=1", "ok", "NoNewPrivs:\t1", "Seccomp:\t2"]


def test_errno_ret_is_returned(rt: Runtime) -> None:
    res = run(rt, ["mkdir", "/tmp/x"], profile(syscalls=[deny(["mkdir", "mkdirat"], errnoRet=errno.ENOSYS)]))
    assert res.returncode == 1
    assert res.stderr == "mkdir: can't create directory '/tmp/x': Function not implemented\n"


@pytest.mark.parametrize(
    ("arg", "blocked"),
    [
        ({"op": "SCMP_CMP_EQ", "value": 10}, "USR1"),
        ({"op": "SCMP_CMP_NE", "value": 10}, "USR2"),
        ({"op": "SCMP_CMP_GT", "value": 10}, "USR2"),
        ({"op": "SCMP_CMP_GE", "value": 12}, "USR2"),
        ({"op": "SCMP_CMP_LT", "value": 12}, "USR1"),
        ({"op": "SCMP_CMP_LE", "value": 10}, "USR1"),
        ({"op": "SCMP_CMP_MASKED_EQ", "value": 0x0F, "valueTwo": 10}, "USR1"),
    ],
)
def test_argument_conditions(rt: Runtime, arg: dict[str, Any], blocked: str) -> None:
    """kill(pid, sig) with sig (argument 1) tested: SIGUSR1 is 10, SIGUSR2 is 12."""
    script = "trap 'echo got USR1' USR1; trap 'echo got USR2' USR2; kill -USR1 $$; kill -USR2 $$; echo done"
    rule = deny(["kill"], args=[{"index": 1, **arg}])
    res = run(rt, ["sh", "-c", script], profile(syscalls=[rule]))
    assert res.returncode == 0, res.stderr
    allowed = "USR2" if blocked == "USR1" else "USR1"
    assert res.stdout == f"got {allowed}\ndone\n"
    assert "Operation not permitted" in res.stderr


def test_conditions_on_two_arguments_must_all_match(rt: Runtime) -> None:
    """Only kill(1, SIGUSR1) is refused: another signal to 1, or SIGUSR1 to another pid, passes."""
    script = (
        "trap 'echo got USR2' USR2; kill -USR1 1; kill -USR2 1; sleep 10 & kill -USR1 $!; wait $!; echo $?"
    )
    rule = deny(
        ["kill"],
        args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}],
    )
    res = run(rt, ["sh", "-c", script], profile(syscalls=[rule]))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "got USR2\n138\n"
    assert res.stderr.count("Operation not permitted") == 1


@pytest.mark.parametrize(
    "action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"]
)
def test_kill_actions_end_the_container_with_sigsys(rt: Runtime, action: str) -> None:
    res = run(rt, ["uname"], profile(syscalls=[{"names": ["uname"], "action": action}]))
    assert res.returncode == 128 + SIGSYS, (res.stdout, res.stderr)
    assert res.stdout == ""


def test_default_errno_with_an_allow_list(rt: Runtime) -> None:
    allow = {"names": BUSYBOX_MINIMUM, "action": "SCMP_ACT_ALLOW"}
    seccomp = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS, "syscalls": [allow]}
    res = run(rt, ["sh", "-c", "echo hello; mkdir /tmp/x"], seccomp)
    assert res.stdout == "hello\n"
    assert res.stderr == "mkdir: can't create directory '/tmp/x': Function not implemented\n"
    assert res.returncode == 1


def test_trace_without_a_tracer_fails_the_call_with_enosys(rt: Runtime) -> None:
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}
    res = run(rt, ["mkdir", "/tmp/x"], profile(syscalls=[rule]))
    assert res.stderr == "mkdir: can't create directory '/tmp/x': Function not implemented\n"


def test_unknown_syscall_names_are_skipped(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = profile(syscalls=[deny(["no_such_syscall", "mkdir", "mkdirat"])])

    bundle = rt.bundle(["mkdir", "/tmp/x"], edit)
    res = rt("--debug", "run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 1
    assert "unknown syscall 'no_such_syscall' skipped" in res.stderr
    assert "mkdir: can't create directory '/tmp/x': Operation not permitted" in res.stderr


def test_flags_and_extra_architectures(rt: Runtime) -> None:
    seccomp = profile(
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        syscalls=[deny(["mkdir", "mkdirat"]), {"names": ["uname"], "action": "SCMP_ACT_LOG"}],
    )
    res = run(rt, ["sh", "-c", "uname; mkdir /tmp/x"], seccomp)
    assert res.stdout == "Linux\n"
    assert "Operation not permitted" in res.stderr


NO_CAPS: dict[str, list[str]] = {
    k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")
}
SOME_CAPS = {**NO_CAPS, **{k: ["CAP_CHOWN", "CAP_KILL"] for k in ("bounding", "effective", "permitted")}}


@pytest.mark.parametrize(
    "process",
    [
        pytest.param({}, id="root-keeps-CAP_SYS_ADMIN"),
        pytest.param({"user": {"uid": 1000, "gid": 1000}, "capabilities": NO_CAPS}, id="user-without-caps"),
        pytest.param({"capabilities": SOME_CAPS}, id="root-without-CAP_SYS_ADMIN"),
    ],
)
def test_without_no_new_privileges(rt: Runtime, process: dict[str, Any]) -> None:
    """The filter must not set no_new_privs; without CAP_SYS_ADMIN it loads before the user switch."""
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/x"
    seccomp = profile(syscalls=[deny(["mkdir", "mkdirat"], errnoRet=errno.ENOSYS)])
    res = run(rt, ["sh", "-c", script], seccomp, noNewPrivileges=False, **process)
    assert res.stdout == "NoNewPrivs:\t0\nSeccomp:\t2\n", res.stderr
    assert res.stderr == "mkdir: can't create directory '/tmp/x': Function not implemented\n"


def _field_error(path: str, problem: str) -> str:
    return f"ocirt: config.json: linux.seccomp{path}: {problem}\n"


BAD_PROFILES = [
    pytest.param(
        profile(syscalls=[deny(["mkdir"]), {"names": ["uname"], "action": "SCMP_ACT_FOO"}]),
        _field_error(".syscalls[1].action", "unknown action 'SCMP_ACT_FOO'"),
        id="unknown-action",
    ),
    pytest.param(
        {"syscalls": [deny(["mkdir"])]}, _field_error(".defaultAction", "is required"), id="no-default-action"
    ),
    pytest.param(
        profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]),
        _field_error(".architectures[1]", "unknown architecture 'SCMP_ARCH_VAX'"),
        id="unknown-arch",
    ),
    pytest.param(
        profile(syscalls=[deny(["kill"], args=[{"index": 1, "value": 1, "op": "SCMP_CMP_ABOUT"}])]),
        _field_error(".syscalls[0].args[0].op", "unknown operator 'SCMP_CMP_ABOUT'"),
        id="bad-op",
    ),
    pytest.param(
        profile(syscalls=[deny(["kill"], args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])]),
        _field_error(".syscalls[0].args[0].index", "must be an integer from 0 to 5, got 6"),
        id="bad-index",
    ),
    pytest.param(
        profile(syscalls=[{"action": "SCMP_ACT_ERRNO"}]),
        _field_error(".syscalls[0].names", "is required and must list at least one syscall"),
        id="missing-names",
    ),
    pytest.param(
        profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]),
        _field_error(
            ".syscalls[0].errnoRet",
            "SCMP_ACT_KILL returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
        ),
        id="errno-on-kill",
    ),
    pytest.param(
        profile(defaultErrnoRet=1),
        _field_error(
            ".defaultErrnoRet", "SCMP_ACT_ALLOW returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
        ),
        id="default-errno-on-allow",
    ),
    pytest.param(
        profile(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_NOPE"]),
        _field_error(".flags[1]", "unknown flag 'SECCOMP_FILTER_FLAG_NOPE'"),
        id="unknown-flag",
    ),
    pytest.param(
        profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]),
        _field_error(
            ".flags[0]",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV applies to SCMP_ACT_NOTIFY only, and no rule uses it",
        ),
        id="wait-killable-without-notify",
    ),
    pytest.param(
        {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/nonexistent"},
        _field_error(".defaultAction", "SCMP_ACT_NOTIFY cannot be the default action"),
        id="notify-default",
    ),
    pytest.param(
        profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]),
        _field_error(".listenerPath", "is required with SCMP_ACT_NOTIFY: no agent would answer"),
        id="notify-without-listener",
    ),
    pytest.param(
        profile(
            syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}], listenerPath="/nonexistent.sock"
        ),
        _field_error(".listenerPath", "/nonexistent.sock: No such file or directory"),
        id="listener-missing",
    ),
    pytest.param(
        profile(listenerMetadata="x"),
        _field_error(".listenerMetadata", "must not be set without listenerPath"),
        id="metadata-without-path",
    ),
    pytest.param(
        profile(syscalls=[{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}], listenerPath="/x.sock"),
        _field_error(
            ".syscalls[0].names[0]",
            "SCMP_ACT_NOTIFY cannot be used for sendmsg: ocirt needs it to reach the agent",
        ),
        id="notify-on-sendmsg",
    ),
    pytest.param(
        profile(
            syscalls=[
                deny(
                    ["kill"],
                    args=[{"index": k, "value": (i << 33) + k + 1, "op": "SCMP_CMP_EQ"} for k in range(3)],
                )
                for i in range(400)
            ]
        ),
        _field_error("", "the filter compiles to 4830 BPF instructions; the kernel takes 4096"),
        id="too-large",
    ),
]


@pytest.mark.parametrize(("seccomp", "message"), BAD_PROFILES)
def test_bad_profile_fails_create_naming_the_field(
    rt: Runtime, seccomp: dict[str, Any], message: str
) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = seccomp

    cid = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["true"], edit), cid)
    assert (res.returncode, res.stderr) == (1, message)
    assert not os.path.exists(os.path.join(rt.root, cid)) and cgroup_dirs(cid) == []


class Agent:
    """A seccomp agent: takes the fd and state from the runtime, answers with EROFS."""

    def __init__(self, path: str) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.server.settimeout(30)
        self.message: dict[str, Any] = {}
        self.fd_kind = ""
        self.ns_pids: list[str] = []
        self.syscalls: list[int] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
                while chunk := conn.recv(65536):
                    data += chunk
            self.message = json.loads(data)
            for fd in fds:
                self.fd_kind = os.readlink(f"/proc/self/fd/{fd}")
                with open(f"/proc/{self.message['pid']}/status") as f:
                    self.ns_pids = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
                self._answer(fd)
        except BaseException as exc:
            self.error = exc

    def _answer(self, fd: int) -> None:
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while poller.poll(30_000) and not self._answer_one(fd):
                pass
        finally:
            os.close(fd)

    def _answer_one(self, fd: int) -> bool:
        """Answer one notification; True once no process uses the filter any more."""
        buf = bytearray(NOTIF.size)
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        except OSError as exc:
            if exc.errno == errno.ENOENT:  # the container is gone
                return True
            raise
        ident, _pid, _flags, nr, *_ = NOTIF.unpack(buf)
        self.syscalls.append(nr)
        fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, NOTIF_RESP.pack(ident, 0, -errno.EROFS, 0))
        return False

    def close(self) -> None:
        self.server.close()
        self.thread.join(35)


@pytest.fixture
def agent(rt: Runtime) -> Iterator[Agent]:
    a = Agent(os.path.join(rt.workdir, "agent.sock"))
    try:
        yield a
    finally:
        a.close()


@pytest.mark.parametrize(
    ("process", "status"),
    [
        pytest.param({}, "created", id="after-the-fifo"),
        pytest.param(
            {"noNewPrivileges": False, "user": {"uid": 1000, "gid": 1000}, "capabilities": NO_CAPS},
            "creating",
            id="before-the-user-switch",
        ),
    ],
)
def test_notify_hands_the_fd_and_state_to_the_agent(
    rt: Runtime, agent: Agent, process: dict[str, Any], status: str
) -> None:
    seccomp = profile(
        syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
        listenerPath=agent.server.getsockname(),
        listenerMetadata="agent-metadata",
    )
    cid = rt.new_id()

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = seccomp
        c["process"].update(process)

    res = rt("run", "--bundle", rt.bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$?"], edit), cid)
    agent.close()
    assert agent.error is None, agent.error
    assert (res.returncode, res.stdout) == (0, "rc=1\n"), res.stderr
    assert res.stderr == "mkdir: can't create directory '/tmp/x': Read-only file system\n"
    assert agent.fd_kind == "anon_inode:seccomp notify"
    assert agent.syscalls and set(agent.syscalls) <= {NR_MKDIR, NR_MKDIRAT}
    msg = agent.message
    assert msg["fds"] == ["seccompFd"] and msg["metadata"] == "agent-metadata"
    assert msg["ociVersion"] == "1.3.0" and msg["state"]["ociVersion"] == "1.3.0"
    assert msg["state"]["id"] == cid and msg["state"]["status"] == status
    assert msg["state"]["pid"] == msg["pid"]
    assert agent.ns_pids == [str(msg["pid"]), "1"], "the pid is the host's, of the container's pid 1"


def test_notify_reaches_the_agent_from_a_container_without_proc(rt: Runtime, agent: Agent) -> None:
    """The runtime connects to the listener through the host's /proc it holds, not the
    container's, which a config need not mount."""
    seccomp = profile(
        syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        listenerPath=agent.server.getsockname(),
    )

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = seccomp
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]

    res = rt("run", "--bundle", rt.bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$?"], edit), rt.new_id())
    agent.close()
    assert agent.error is None, agent.error
    assert (res.returncode, res.stdout) == (0, "rc=1\n"), res.stderr
    assert agent.message["fds"] == ["seccompFd"]


def test_agent_that_does_not_listen_fails_start(rt: Runtime) -> None:
    """The spec: if sending to the listener fails, the runtime must generate an error."""
    path = os.path.join(rt.workdir, "deaf.sock")
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        deaf.bind(path)
        seccomp = profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}], listenerPath=path)
        bundle = rt.bundle(["true"], lambda c: c["linux"].update(seccomp=seccomp))
        cid = rt.new_id()
        res = rt("run", "--bundle", bundle, cid)
        assert res.returncode == 1
        assert res.stderr == f"ocirt: linux.seccomp.listenerPath: connect to {path}: Connection refused\n"
        assert cgroup_dirs(cid) == []
    finally:
        deaf.close()
