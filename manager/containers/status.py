"""The status users see, kept honest: a record that says ``running`` is checked against
its shim and its process (an exit the exit command has not recorded yet is recorded now).

A pid alone does not name a process: once the container and its shim are dead, the kernel
may hand the pid to anything. The process is the pid and its start time (field 22 of
``/proc/<pid>/stat``) recorded at start, as the runtime's own state does."""

from __future__ import annotations

import os
import time

from ocirt.foundation import procfs
from ocirt.manager import db
from ocirt.manager.containers import exits, layout, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container
from ocirt.shim import protocol

PID_START = "pid_start"  # the plan's key for the init's start time


def refresh(ctx: Context, c: Container) -> Container:
    if not c.state.live:
        return c
    state_dir = layout.shim_dir(ctx.root, c.id, int(c.plan.get("serial", 0)))
    exited = os.path.exists(os.path.join(state_dir, protocol.EXIT_FILE))
    if exited or not alive(c):
        exits.finish(ctx, c.id)
        return store.find(db.connect(ctx.root), c.id) or c
    return c


def alive(c: Container) -> bool:
    """The container's init still runs: its pid names the process started then (a record
    from before start times were kept is taken at its pid's word)."""
    started = procfs.start_ticks(c.pid) if c.pid > 0 else None
    return started is not None and c.plan.get(PID_START, started) == started


def listing(ctx: Context) -> list[Container]:
    return [refresh(ctx, c) for c in store.all_containers(db.connect(ctx.root))]


def ago(then: float | None) -> str:
    if then is None:
        return ""
    secs = max(0, int(time.time() - then))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if secs >= size:
            n = secs // size
            return f"{n} {unit}{'s' if n > 1 else ''}"
    return "Less than a second" if secs < 1 else f"{secs} second{'s' if secs > 1 else ''}"


def describe(c: Container) -> str:
    """docker's STATUS column: ``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ``Created``."""
    code = "?" if c.exit_code is None else c.exit_code
    match c.state:
        case ContainerState.RUNNING:
            return f"Up {ago(c.started_at)}"
        case ContainerState.PAUSED:
            return f"Up {ago(c.started_at)} (Paused)"
        case ContainerState.EXITED:
            oom = " (OOM killed)" if c.oom_killed else ""
            return f"Exited ({code}){oom} {ago(c.finished_at)} ago"
        case ContainerState.RESTARTING:
            return f"Restarting ({code}) {ago(c.finished_at)} ago"
        case ContainerState.REMOVING:
            return "Removal In Progress"
        case ContainerState.DEAD:
            return "Dead"
    return "Created"
