"""The intermediate process: enters and creates namespaces, then forks init.

It exists because a new (or joined) pid or time namespace only applies to the children of
the process that made it, and because the parent must write the id maps of a new user
namespace from outside it while this process waits. It forks init only once the parent
has moved it into the container's cgroup, so init starts there; a new cgroup namespace is
left to init, whose cgroup is then final.
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.process import channel, init
from ocirt.runtime.process.launch import describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ocirt.runtime.process.channel import Channel
    from ocirt.runtime.process.launch import Launch


def run(launch: Launch, chan: Channel) -> NoReturn:
    status = 1
    try:
        _enter_namespaces(launch, chan)
        chan.expect(channel.GO, "ocirt create")
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
    plan.enter_joined()
    if plan.new_user:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        chan.send(channel.USERNS)
        chan.expect(channel.MAPPED, "ocirt create")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if plan.new & ~syscalls.CLONE_NEWCGROUP:
        syscalls.unshare(plan.new & ~syscalls.CLONE_NEWCGROUP)
    if plan.new & syscalls.CLONE_NEWTIME and linux.time_offsets:
        from ocirt.runtime.namespaces import write_time_offsets

        write_time_offsets(linux.time_offsets)
