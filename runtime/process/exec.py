"""The joining side of ``ocirt exec``: from our namespaces into the container's, then ``execve``.

Two processes, for the same reason ``create`` needs an intermediate: a joined pid (or
time) namespace applies only to children. The first is forked early and imports this
module while the parent moves it into the container's cgroup and works out the process.
The parent's ``go`` carries that process (as JSON), ``origin`` (how errors name where it
came from), the container's seccomp profile and state, and whether a console socket
follows (as SCM_RIGHTS). The first then joins the init's namespaces by setns, user first
and mount last, forks the second and exits. The second is inside the container's pid
namespace; it sets itself up as init does for the container's program (rlimits,
terminal, seccomp, user and capabilities, no_new_privs, cwd) and calls execve.

Joining the mount namespace is enough to see the container's root as ``/``: the kernel
places the joiner on the topmost mount of the namespace's root, which is the rootfs that
init pivoted (or moved) there.

The channel stays open in the second process and closes on execve: the parent reads
end-of-file as "started" and an ``error`` message as the reason it did not, so a missing
program or a bad cwd fails ``ocirt exec`` itself, with nothing left running.

Everything is imported at the top: after setns(mnt) the host's library is out of sight.
"""

from __future__ import annotations

import _socket
import os

from ocirt.runtime import console, lsm, procattrs, seccomp, syscalls
from ocirt.runtime.capabilities import CapabilitySets
from ocirt.runtime.cgroups.base import join, saved_dirs
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.namespaces import CLONE_FLAGS
from ocirt.runtime.process import become, channel
from ocirt.runtime.process.launch import describe
from ocirt.specs.config import Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from ocirt.runtime.log import Log
    from ocirt.runtime.process.channel import Channel


def run(
    namespaces: list[tuple[str, int]], cgroup: dict[str, Any], preserve_fds: int, chan: Channel, log: Log
) -> NoReturn:
    """The first child; ``namespaces`` are (type, fd) in setns order, ``cgroup`` the
    container's as its state saved it. It joins the cgroup itself once ``go`` comes (after
    the parent set ``execCPUAffinity.initial``), which is cheaper than being moved
    (``cgroups.base.join``). The seccomp filter is built before joining, while the host's paths
    (a notify listener's) are still in sight."""
    origin = "exec"
    try:
        # Out of the container's reach until execve (CVE-2019-5736; docs/architecture.md).
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
        become.fds_for_exec(preserve_fds)
        _above_stdio(chan)
        log.debug("exec: the joining process waits for go")  # a phase mark for bench/lifecycle.py
        go = chan.expect(channel.GO, "ocirt exec")
        origin = go["origin"]
        if cgroup:
            join(saved_dirs(cgroup))
        job = _Job(go, log)
        tty = console.recv_fd(chan.sock)[0] if go["terminal"] else -1
        become.set_oom_score_adj(job.proc)  # before the user namespace: see its docstring
        _join(namespaces)
        pid = os.fork()
        if pid == 0:
            _become(job, chan, origin, tty)
        chan.send(channel.PID, pid=pid)
    except BaseException as exc:
        _fail(chan, origin, exc)
    os._exit(0)


def _above_stdio(chan: Channel) -> None:
    """A caller with stdio closed leaves our channel there, where the terminal goes; it
    must stay open until execve and not reach the program."""
    low = chan.sock
    if low.fileno() < 3:
        chan.sock = _socket.socket(fileno=console.above_stdio(low.detach()))
    os.set_inheritable(chan.sock.fileno(), False)


def _join(namespaces: list[tuple[str, int]]) -> None:
    for kind, fd in namespaces:
        try:
            syscalls.setns(fd, CLONE_FLAGS[kind])
        except OSError as exc:
            raise OcirtError(f"joining the container's {kind} namespace: {exc.strerror}") from None
        os.close(fd)


class _Job:
    """What ``go`` carries, parsed: the process, its capabilities, the container's filter."""

    __slots__ = ("attrs", "caps", "filter", "proc", "state")

    def __init__(self, go: dict[str, Any], log: Log) -> None:
        self.proc = proc = Process(go["process"])
        self.attrs = procattrs.parse(go["process"], go.get("personality"))
        self.caps = None if proc.capabilities is None else CapabilitySets(proc.capabilities, log.warning)
        self.state: dict[str, Any] = go["state"]
        profile = go["seccomp"]
        self.filter = None if profile is None else seccomp.compile_profile(profile, proc, self.caps, log)


def _become(job: _Job, chan: Channel, origin: str, tty: int) -> NoReturn:
    """The second child, inside the pid namespace: become the container process; ``tty``
    is the socket its terminal's master goes to, or -1. The filter is loaded where init
    loads it: before the user switch when that drops what loading needs, else last."""
    proc = job.proc
    try:
        become.set_rlimits(proc)
        if tty >= 0:
            console.setup(_socket.socket(fileno=tty), proc, bind_console=False)
        else:
            os.setsid()  # as runc: a session and process group of its own, not the caller's
        procattrs.apply(job.attrs)
        lsm.apply_labels(proc.raw)
        procattrs.set_affinity(0, job.attrs.affinity_final, "process.execCPUAffinity.final")
        seccomp.load(job.filter, job.state, early=True)
        proc.env = become.with_home(proc.env, proc.user.uid)
        become.switch_user(job.caps, proc)
        become.enter_cwd(proc.cwd)
        path = become.find_program(proc.args[0], proc.env)
        seccomp.load(job.filter, job.state, early=False)
        _execve(path, proc)
    except BaseException as exc:
        _fail(chan, origin, exc)


def _execve(path: str, proc: Process) -> NoReturn:
    become.restore_signals()
    environ = {}
    for entry in proc.env:
        key, _, value = entry.partition("=")
        environ[key] = value
    try:
        os.execve(path, proc.args, environ)
    except OSError as exc:
        raise SpecError("process.args[0]", f"exec {path}: {exc.strerror}") from None


def _fail(chan: Channel, origin: str, exc: BaseException) -> NoReturn:
    """init's helpers name config.json in their errors; this process came from ``origin``."""
    msg = describe(exc)
    if isinstance(exc, SpecError):
        msg = f"{origin}: {msg.removeprefix('config.json: ')}"
    try:
        chan.send(channel.ERROR, msg=msg)
    finally:
        os._exit(1)
