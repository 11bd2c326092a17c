"""``rm`` and ``container prune``: stop if asked (``-f``), then undo everything ``create``
and ``start`` made. Anonymous volumes go only with ``-v``; named ones stay, as in docker."""

from __future__ import annotations

from ocirt.manager import db
from ocirt.manager.containers import exits, layout, stop, store, teardown
from ocirt.manager.containers.runtime import Context
from ocirt.manager.errors import ManagerError


def remove(ctx: Context, ref: str, force: bool = False, volumes: bool = False) -> str:
    """Remove ``ref``; its id."""
    conn = db.connect(ctx.root)
    c = store.get(conn, ref)
    if not c.state.can_remove(force):
        raise ManagerError(f"container {c.name} is {c.state}: stop it first or use rm -f")
    if c.state.can_stop:
        stop.kill_now(ctx, c.id)
    exits.finish(ctx, c.id)
    with layout.locked(ctx.root, c.id):
        current = store.find(conn, c.id)
        if current is None:
            return c.id
        if not current.state.can_remove(force=False):
            raise ManagerError(f"container {c.name} was started again while being removed")
        teardown.remove_locked(ctx, current, volumes)
    return c.id


def prune(ctx: Context) -> list[str]:
    """Remove every exited or created container; their ids."""
    removed = []
    for c in store.all_containers(db.connect(ctx.root)):
        if c.state.can_prune:
            try:
                removed.append(remove(ctx, c.id))
            except ManagerError:
                continue
    return removed
