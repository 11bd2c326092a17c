"""``ocirtctl system reset``: a root back to nothing, as ``podman system reset``.

Containers go first, each through ``rm -f -v`` under its own lock, so an exit command that
is restarting one finishes before it is removed; then the root's networks, default bridge,
nft table and DNS servers (``teardown_root``, which also stops anything late from making them
again); then what is still mounted under the root, the shims' run directory and the root.
"""

from __future__ import annotations

import os
import shutil

from ocirt.manager import db
from ocirt.manager.containers import layout, remove, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.errors import ManagerError
from ocirt.manager.network import service
from ocirt.runtime import syscalls


def reset(root: str, runtime: str | None) -> list[str]:
    """Remove everything of ``root``; what could not be removed, one line each."""
    if not os.path.exists(os.path.join(root, db.DB_NAME)):
        return []
    ctx = Context.make(root, runtime)
    failed = []
    for c in store.all_containers(db.connect(root)):
        try:
            remove.remove(ctx, c.id, force=True, volumes=True)
        except (ManagerError, OSError) as exc:
            failed.append(f"container {c.name}: {exc}")
    try:
        service.teardown_root(root)
    except (ManagerError, OSError) as exc:
        failed.append(f"networks: {exc}")
    db.close_all()
    for path in _mounts_under(os.path.abspath(root)):
        try:
            syscalls.umount2(path, syscalls.MNT_DETACH)
        except OSError as exc:
            failed.append(f"mount {path}: {exc}")
    shutil.rmtree(os.path.dirname(layout.shim_base(root, "")), ignore_errors=True)
    shutil.rmtree(root, onerror=lambda _f, path, exc: failed.append(f"{path}: {exc[1]}"))
    return failed


def _mounts_under(root: str) -> list[str]:
    """Mount points at or below ``root``, innermost first."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in reversed(points) if p == root or p.startswith(root + "/")]
