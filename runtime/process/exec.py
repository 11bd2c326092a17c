"""The joining side of ``ocirt exec``: from our namespaces into the container's, then ``execve``.

Two processes, for the same reason ``create`` needs an intermediate: a joined pid (or
time) namespace applies only to children. The first moves itself into the container's
cgroup and joins the init's namespaces by setns, user first and mount last, while the
parent works out the process; the parent's ``go`` carries it (``process`` as JSON, and
``origin``, how errors name where it came from). The first then forks the second and exits.
The second is inside the container's pid namespace; it sets itself up as init does for
the container's program (rlimits, user, capabilities, no_new_privs, cwd) and calls execve.

Joining the mount namespace is enough to see the container's root as ``/``: the kernel
places the joiner on the topmost mount of the namespace's root, which is the rootfs that
init pivoted (or moved) there.

The channel stays open in the second process and closes on execve: the parent reads
end-of-file as "started" and an ``error`` message as the reason it did not, so a missing
program or a bad cwd fails ``ocirt exec`` itself, with nothing left running.

Everything is imported at the top: after setns(mnt) the host's library is out of sight.
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.capabilities import CapabilitySets
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.namespaces import CLONE_FLAGS
from ocirt.runtime.process import channel, init
from ocirt.runtime.process.launch import describe
from ocirt.specs.config import Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.process.channel import Channel


def run(
    namespaces: list[tuple[str, int]], cgroup: Cgroup | None, preserve_fds: int, chan: Channel
) -> NoReturn:
    """The first child; ``namespaces`` are (type, fd) in setns order."""
    origin = "exec"
    try:
        init._fds_for_exec(preserve_fds)
        os.set_inheritable(chan.sock.fileno(), False)
        if cgroup is not None:
            cgroup.add(os.getpid())
        _join(namespaces)
        go = chan.expect(channel.GO, "ocirt exec")
        origin = go["origin"]
        proc = Process(go["process"])
        pid = os.fork()
        if pid == 0:
            _become(proc, chan, origin)
        chan.send(channel.PID, pid=pid)
    except BaseException as exc:
        _fail(chan, origin, exc)
    os._exit(0)


def _join(namespaces: list[tuple[str, int]]) -> None:
    for kind, fd in namespaces:
        try:
            syscalls.setns(fd, CLONE_FLAGS[kind])
        except OSError as exc:
            raise OcirtError(f"joining the container's {kind} namespace: {exc.strerror}") from None
        os.close(fd)


def _become(proc: Process, chan: Channel, origin: str) -> NoReturn:
    """The second child, inside the pid namespace: become the container process."""
    try:
        caps = None if proc.capabilities is None else CapabilitySets(proc.capabilities)
        init._set_rlimits(proc)
        init._set_oom_score_adj(proc)
        init._switch_user(caps, proc)
        try:
            os.chdir(proc.cwd)
        except OSError as exc:
            raise SpecError("process.cwd", f"{proc.cwd}: {exc.strerror}") from None
        path = init.find_program(proc.args[0], proc.env)
        _execve(path, proc)
    except BaseException as exc:
        _fail(chan, origin, exc)


def _execve(path: str, proc: Process) -> NoReturn:
    init._restore_signals()
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
