"""Where a container's files live under the manager's root.

``<root>/containers/<id>/``: ``bundle/config.json``, ``userdata/`` (hostname, hosts,
resolv.conf bind-mounted into the container), ``ctr.log`` and ``lock``. Shim state lives
under ``/run/ocirt/shims/<root hash>/<id>/<n>``, one directory per start, because an exiting
shim removes its socket and pid file while the next start's shim may already be running.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ocirt.manager.errors import ManagerError

SHIM_RUN_DIR = "/run/ocirt/shims"


def containers_dir(root: str) -> str:
    return os.path.join(root, "containers")


def container_dir(root: str, cid: str) -> str:
    return os.path.join(root, "containers", cid)


def bundle_dir(root: str, cid: str) -> str:
    return os.path.join(container_dir(root, cid), "bundle")


def userdata(root: str, cid: str, name: str = "") -> str:
    return os.path.join(container_dir(root, cid), "userdata", name)


def log_path(root: str, cid: str) -> str:
    return os.path.join(container_dir(root, cid), "ctr.log")


def shim_base(root: str, cid: str) -> str:
    """Under /run: the shim's sockets must fit in sun_path (108 bytes) whatever the root."""
    tag = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:8]
    return os.path.join(SHIM_RUN_DIR, tag, cid[:16])


def shim_dir(root: str, cid: str, serial: int) -> str:
    return os.path.join(shim_base(root, cid), str(serial))


def runtime_root(root: str) -> str:
    return os.path.join(root, "runtime")


def cgroups_path(cid: str, parent: str | None = None) -> str:
    """``/ocirt/ID``, or ``PARENT/ID`` for ``--cgroup-parent`` (relative is under the root)."""
    return f"/{(parent or 'ocirt').strip('/')}/{cid}"


@contextmanager
def locked(root: str, cid: str) -> Iterator[None]:
    """Serialises the state changes of one container across ``ocirtctl`` processes."""
    path = os.path.join(container_dir(root, cid), "lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise ManagerError(f"no such container: {cid}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
