"""Whether a container's init still runs. A pid alone does not name a process: once the
container and its shim are dead, the kernel may hand the pid to anything. The process is the
pid and its start time (field 22 of ``/proc/<pid>/stat``) recorded at start, as the
runtime's own state does."""

from __future__ import annotations

from ocirt.foundation import procfs
from ocirt.manager.containers.store import Container

PID_START = "pid_start"  # the plan's key for the init's start time


def alive(c: Container) -> bool:
    """The container's init still runs: its pid names the process started then (a record
    from before start times were kept is taken at its pid's word)."""
    started = procfs.start_ticks(c.pid) if c.pid > 0 else None
    return started is not None and c.plan.get(PID_START, started) == started
