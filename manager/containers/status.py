"""The status users see, kept honest: a record that says ``running`` is checked against
its shim and its process (``liveness.py``); an exit the exit command has not recorded yet
is recorded now."""

from __future__ import annotations

import os
import time

from ocirt.manager import db
from ocirt.manager.containers import exits, health, layout, liveness, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container
from ocirt.shim import protocol


def refresh(ctx: Context, c: Container) -> Container:
    if not c.state.live:
        return c
    state_dir = layout.shim_dir(ctx.root, c.id, int(c.plan.get("serial", 0)))
    exited = os.path.exists(os.path.join(state_dir, protocol.EXIT_FILE))
    if exited or not liveness.alive(c):
        exits.finish(ctx, c.id)
        return store.find(db.connect(ctx.root), c.id) or c
    return c


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
            return f"Up {ago(c.started_at)}{health.suffix(c)}"
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
