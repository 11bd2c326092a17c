"""The parent side of ``create``: fork, make the cgroup, map ids, wait for ``ready``.

The intermediate is forked before the cgroup is made, so that the parent's cgroup work
and the child's imports run side by side; it then joins the cgroup itself, which skips
the RCU grace period a move by pid waits for (``Cgroup.join``).

On any failure the children are killed before the error travels up, so the caller's
cleanup (cgroup, state directory) never races a half-started container.
"""

from __future__ import annotations

import os
import time

from ocirt.foundation.procfs import sleeping, start_ticks
from ocirt.runtime.errors import OcirtError
from ocirt.runtime.process import channel
from ocirt.runtime.state import unlock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.process.launch import Launch


def spawn(launch: Launch, cgroup: Cgroup, make_cgroup: Callable[[int], None]) -> tuple[int, int]:
    """Start the process chain; return the init's host pid and its start time.

    ``make_cgroup(child)`` creates the cgroup and applies its limits while the intermediate
    imports what init needs (a few ms either way); it waits for ``go`` before making any
    namespace, so, as with runc, that is charged to the container's cgroup.
    """
    ours, theirs = channel.pair()
    child = os.fork()
    if child == 0:
        ours.close()
        unlock()
        from ocirt.runtime.process import intermediate

        intermediate.run(launch, cgroup, theirs)
    theirs.close()
    launch.plan.close()
    init_pid = 0
    try:
        make_cgroup(child)
        ours.send(channel.GO)
        if launch.plan.new_user:
            ours.expect(channel.USERNS, "ocirt intermediate process")
            from ocirt.runtime.namespaces import write_id_maps

            write_id_maps(child, launch.config.linux)
            ours.send(channel.MAPPED)
        if launch.bind_sources:
            _send_bind_sources(launch, ours, child)
        # init shares the channel: on a loaded host its first message can beat the pid
        early: set[str] = set()
        msg = ours.expect(channel.PID, "ocirt intermediate process", also=(channel.HOOKS, channel.READY))
        while msg["type"] != channel.PID:
            early.add(msg["type"])
            msg = ours.expect(channel.PID, "ocirt intermediate process")
        init_pid = int(msg["pid"])
        _reap(child)
        child = 0
        if launch.needs_create_hooks():
            _runtime_hooks(launch, ours, init_pid, asked=channel.HOOKS in early)
        if channel.READY not in early:
            ours.expect(channel.READY, "container init process")
        start = start_ticks(init_pid)
        if start is None or not blocks_on_fifo(init_pid):
            raise OcirtError("container init process exited during setup")
        return init_pid, start
    except BaseException:
        for pid in (init_pid, child):
            if pid:
                kill_and_wait(pid)
        if child:
            _reap(child)
        raise
    finally:
        ours.close()


def _send_bind_sources(launch: Launch, chan: channel.Channel, child: int) -> None:
    from ocirt.runtime.namespaces import open_in_mount_ns

    chan.expect(channel.MOUNTNS, "ocirt intermediate process")
    mounts = launch.config.mounts
    wanted = [(f"mounts[{i}] ({mounts[i].destination})", path) for i, path in launch.bind_sources]
    fds = open_in_mount_ns(child, wanted)
    try:
        chan.send_fds(channel.SOURCES, fds)
    finally:
        for fd in fds:
            os.close(fd)


def _runtime_hooks(launch: Launch, chan: channel.Channel, init_pid: int, asked: bool) -> None:
    """prestart and createRuntime, in our namespaces, while init waits before pivot_root."""
    from ocirt.runtime import hooks

    if not asked:
        chan.expect(channel.HOOKS, "container init process")
    state = {**launch.hook_state, "pid": init_pid}
    for kind in ("prestart", "createRuntime"):
        hooks.run_all(launch.hooks.get(kind, []), state)
    chan.send(channel.HOOKED)


def blocks_on_fifo(pid: int, timeout: float = 5.0) -> bool:
    """After ``ready`` init's one step left is to block opening the exec fifo: wait until it
    sleeps there, so an init that dies on the way is create's failure, not a container that
    ``start`` finds stopped. A host too slow to see it asleep in time gets the benefit."""
    deadline = time.monotonic() + timeout
    while (asleep := sleeping(pid)) is False and time.monotonic() < deadline:
        time.sleep(0.0002)
    return asleep is not None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def kill_and_wait(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL ``pid`` and wait until it is gone or a zombie; it may not be our child."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while start_ticks(pid) is not None and time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        time.sleep(0.002)
