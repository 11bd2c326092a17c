"""What a container leaves once it is exited, undone under its lock: its network, then what
``create`` made (rootfs, state, record) and, with ``rm -v`` or ``--rm``, its anonymous
volumes. ``rm`` and an exit under ``--rm`` both end here."""

from __future__ import annotations

from ocirt.manager.containers import create, networking, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container


def remove_locked(ctx: Context, c: Container, volumes: bool) -> None:
    if c.state is ContainerState.CREATED:
        # a start killed after its shim was launched leaves the record here while the
        # runtime's container (and its cgroups) may exist, even run: remove it too
        ctx.run("delete", "--force", c.id, check=False)
    networking.teardown(ctx, c)
    if not volumes:
        c.plan["anonymous"] = []
    create.discard(ctx, c)
    store.event(ctx.root, c, "destroy")
