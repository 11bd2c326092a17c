"""The intermediate process: enters and creates namespaces, then forks init.

It exists because a new (or joined) pid or time namespace only applies to the children of
the process that made it, and because the parent must write the id maps of a new user
namespace from outside it while this process waits. It is forked before the cgroup exists,
so that its imports overlap the parent's cgroup setup, but it makes namespaces and forks
init only once the parent has made the container's cgroup (``go``) and it has joined it
(``Cgroup.join``), so they are charged there and init starts there; a new cgroup
namespace is left to init, whose cgroup is then final.
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.process import become, channel, init
from ocirt.runtime.process.launch import describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.process.channel import Channel
    from ocirt.runtime.process.launch import Launch


def run(launch: Launch, cgroup: Cgroup, chan: Channel) -> NoReturn:
    status = 1
    try:
        if launch.config.process is not None:
            become.set_oom_score_adj(launch.config.process)
        chan.expect(channel.GO, "ocirt create")
        cgroup.join()
        _enter_namespaces(launch, chan)
        # Init and what it forks stay out of reach of the container's processes until execve
        # (CVE-2019-5736: /proc/<pid>/exe is the host's python; docs/architecture.md).
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
        pid = os.fork()
        if pid == 0:
            init.run(launch, chan)
        chan.send(channel.PID, pid=pid)
        status = 0
    except BaseException as exc:
        try:
            chan.send(channel.ERROR, msg=describe(exc))
        finally:
            os._exit(1)
    os._exit(status)


def _enter_namespaces(launch: Launch, chan: Channel) -> None:
    plan, linux = launch.plan, launch.config.linux
    joined_user = any(kind == "user" for kind, _ in plan.join)
    plan.enter_joined()
    if joined_user:
        # as after a new one: act as the namespace's root, or what init makes has no mapped owner
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if plan.new_user:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        chan.send(channel.USERNS)
        chan.expect(channel.MAPPED, "ocirt create")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if plan.new & ~syscalls.CLONE_NEWCGROUP:
        syscalls.unshare(plan.new & ~syscalls.CLONE_NEWCGROUP)
    if launch.bind_sources:
        chan.send(channel.MOUNTNS)
        _, fds = chan.expect_fds(channel.SOURCES, "ocirt create", len(launch.bind_sources))
        launch.bind_fds = {index: fd for (index, _), fd in zip(launch.bind_sources, fds, strict=True)}
    if plan.new & syscalls.CLONE_NEWTIME and linux.time_offsets:
        from ocirt.runtime.namespaces import write_time_offsets

        # setresuid made us non-dumpable, so /proc/self belongs to the host's root, whom
        # the user namespace may not map; we are not in the container's pid namespace.
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 1)

        write_time_offsets(linux.time_offsets)
