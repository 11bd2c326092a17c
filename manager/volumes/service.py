"""Volumes as directories under ``<root>/volumes/<name>/_data``, docker's ``local`` driver.

A volume is in use while any container's plan names it; that is the only reference count,
so removing a container is what frees its volumes, and nothing can drift out of step.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

from ocirt.manager import db, events
from ocirt.manager.containers import store as containers_store
from ocirt.manager.errors import ManagerError
from ocirt.manager.volumes import store
from ocirt.manager.volumes.requests import check_name
from ocirt.manager.volumes.store import Volume


def volume_dir(root: str, name: str) -> str:
    return os.path.join(root, "volumes", name, "_data")


def create(root: str, name: str | None = None, labels: dict[str, str] | None = None) -> Volume:
    """A named volume (existing: returned as is), or an anonymous one when ``name`` is None."""
    anonymous = name is None
    vol_name = os.urandom(32).hex() if name is None else name
    check_name(vol_name, "volume")
    conn = db.connect(root)
    with db.transaction(conn):
        store.insert(conn, Volume(vol_name, anonymous=anonymous, labels=labels or {}))
        vol = store.find(conn, vol_name)
    assert vol is not None
    os.makedirs(volume_dir(root, vol_name), mode=0o755, exist_ok=True)
    events.record(root, "volume", "create", vol_name, {"driver": "local"})
    return vol


def get(root: str, name: str) -> Volume:
    vol = store.find(db.connect(root), name)
    if vol is None:
        raise ManagerError(f"no such volume: {name}")
    return vol


def users(conn: sqlite3.Connection, name: str) -> list[str]:
    """The containers using volume ``name``: the containers' store owns their table."""
    return containers_store.users_of_volume(conn, name)


def remove(root: str, name: str, force: bool = False) -> None:
    conn = db.connect(root)
    with db.transaction(conn):
        if store.find(conn, name) is None:
            if force:
                return
            raise ManagerError(f"no such volume: {name}")
        using = users(conn, name)
        if using:
            raise ManagerError(f"volume {name} is in use by container {', '.join(using)}")
        store.delete(conn, name)
    shutil.rmtree(os.path.join(root, "volumes", name), ignore_errors=True)
    events.record(root, "volume", "destroy", name, {"driver": "local"})


def prune(root: str) -> list[str]:
    """Remove every volume no container uses; the names removed."""
    removed = []
    conn = db.connect(root)
    for vol in store.all_volumes(conn):
        if not users(conn, vol.name):
            try:
                remove(root, vol.name)
            except ManagerError:
                continue
            removed.append(vol.name)
    return removed


def copy_up(root: str, name: str, source: str) -> None:
    """Fill a fresh volume from the image's directory at its mount point, once.

    ``source`` is already resolved inside the rootfs; ``cp -a`` copies symlinks as links,
    so nothing outside the rootfs is read. A volume that ever had content keeps its own.
    """
    conn = db.connect(root)
    vol = store.find(conn, name)
    if vol is None or vol.initialized:
        return
    target = volume_dir(root, name)
    if os.path.isdir(source) and not os.path.islink(source) and not os.listdir(target):
        import subprocess  # here: only a first mount's copy-up runs it, not every container's exit

        done = subprocess.run(["cp", "-a", "--", f"{source}/.", target], capture_output=True, text=True)
        if done.returncode != 0:
            raise ManagerError(f"volume {name}: copy from image failed: {done.stderr.strip()}")
    with db.transaction(conn):
        store.mark_initialized(conn, name)
