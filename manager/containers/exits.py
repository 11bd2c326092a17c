"""What happens when a container's process ends: ``ocirtctl container-cleanup ID``.

The shim runs it as its exit command; ``stop``, ``rm -f`` and a foreground ``run`` call the
same ``finish`` themselves, so whichever comes first does the work under the container's
lock and the others find nothing left to do. It records the exit, then restarts the
container by its policy (same network namespace, a new shim), or removes it when it was
started with ``--rm``.
"""

from __future__ import annotations

import json
import time

from ocirt.manager import db
from ocirt.manager.containers import layout, mounts, restart, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container
from ocirt.manager.errors import ManagerError
from ocirt.shim.client import ShimClient, read_exit


def finish(ctx: Context, cid: str) -> None:
    conn = db.connect(ctx.root)
    found = store.find(conn, cid)
    if found is None:
        return
    try:
        with layout.locked(ctx.root, found.id):
            c = store.find(conn, found.id)
            if c is not None and c.state.live and _record_exit(ctx, c):
                code = {} if c.exit_code is None else {"exitCode": str(c.exit_code)}
                store.event(ctx.root, c, "die", code)
                mounts.announce(ctx.root, c.id, c.plan.get("mounts", []), "unmount")
                _after_exit(ctx, c)
    except ManagerError:
        if store.find(conn, found.id) is not None:
            raise


def _record_exit(ctx: Context, c: Container) -> bool:
    """False while the process still runs; else the exit goes into the record."""
    state_dir = layout.shim_dir(ctx.root, c.id, int(c.plan.get("serial", 0)))
    status = read_exit(state_dir)
    if status is None:
        if ShimClient(state_dir).alive() or _runtime_running(ctx, c):
            return False
        c.exit_code = None  # the shim died first: the code is lost, not invented
        ctx.run("delete", "--force", c.id, check=False)
    else:
        c.exit_code, c.oom_killed = status.exit_code, status.oom_killed
    c.state, c.pid, c.finished_at = c.state.to(ContainerState.EXITED), 0, time.time()
    return True


def _free_ports(ctx: Context, c: Container) -> None:
    """A stopped container gives its published host ports back, as docker's do (the next
    start publishes them again); its namespace and address stay until it is removed."""
    from ocirt.manager.containers import networking

    if networking.uses_bridge(c.options.network):
        from ocirt.manager.network import service

        service.unpublish(ctx.root, c.id)


def _runtime_running(ctx: Context, c: Container) -> bool:
    done = ctx.run("state", c.id, check=False)
    return done.returncode == 0 and json.loads(done.stdout).get("status") in ("running", "paused")


def _after_exit(ctx: Context, c: Container) -> None:
    conn = db.connect(ctx.root)
    opts = c.options
    if restart.should_restart(
        opts.restart, opts.restart_max, c.restart_count, c.exit_code, c.stopped_by_user
    ):
        c.restart_count += 1
        with db.transaction(conn):
            store.save(conn, c)
        from ocirt.manager.containers import start  # a restart only: start costs ~40 modules

        try:
            start.launch_locked(ctx, c)
            return
        except ManagerError:
            c.state = c.state.to(ContainerState.EXITED)
    with db.transaction(conn):
        store.save(conn, c)
    _free_ports(ctx, c)
    if opts.auto_remove:
        from ocirt.manager.containers import teardown

        teardown.remove_locked(ctx, c, volumes=True)
