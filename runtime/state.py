"""Where a container's state lives between CLI calls, and how its status is derived.

Each container owns ``<root>/<id>/``: ``state.json`` (written atomically) and, until
``start`` consumes it, ``exec.fifo``. The status is never stored: it is read from the
kernel each time (is the init alive with the same start time, is the fifo still there,
is the cgroup frozen), as runc does, so it cannot go stale when a process dies.
"""

from __future__ import annotations

import os
import time

from ocirt.foundation import fastjson
from ocirt.foundation.procfs import start_ticks
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/ocirt"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"
_ID_EXTRA = set("_+-.")


def check_id(container_id: str) -> None:
    """runc's rule (``^[\\w+-\\.]+$``, not ``.`` or ``..``) keeps ids safe as path names."""
    if not container_id or container_id in (".", ".."):
        raise OcirtError(f"invalid container id {container_id!r}")
    for ch in container_id:
        if not (ch.isascii() and ch.isalnum()) and ch not in _ID_EXTRA:
            raise OcirtError(
                f"invalid container id {container_id!r}: only letters, digits and _+-. are allowed"
            )


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, for a container without a cgroup of its own (rootless,
    none delegated): what its cgroup would have listed, short of daemonised orphans."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if start_ticks(current) is None:
            continue
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo += [int(child) for child in f.read().split()]
            except OSError:
                continue
    return found


class State:
    """What ``state.json`` records; ``status`` is filled in by :func:`load`."""

    __slots__ = (
        "annotations",
        "bundle",
        "cgroup",
        "config",
        "created",
        "dir",
        "id",
        "oci_version",
        "pid",
        "pid_start",
        "rootfs",
        "status",
    )

    def __init__(self, state_dir: str, container_id: str) -> None:
        self.dir = state_dir
        self.id = container_id
        self.pid = 0
        self.pid_start = 0
        self.bundle = ""
        self.rootfs = ""
        self.created = ""
        self.oci_version = ""
        self.annotations: dict[str, str] = {}
        self.cgroup: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.status = CREATING

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, FIFO)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "oci_version": self.oci_version,
            "annotations": self.annotations,
            "cgroup": self.cgroup,
            "config": self.config,
        }

    def save(self) -> None:
        """Write-then-rename, so a reader never sees half a file."""
        tmp = os.path.join(self.dir, f".{STATE_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, fastjson.dumps(self.to_json()).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.dir, STATE_FILE))

    def owner(self) -> str:
        import pwd

        uid = os.stat(self.dir).st_uid
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"#{uid}"

    def public(self, with_owner: bool = False) -> dict[str, Any]:
        """The runtime-spec state document, with runc's extra fields that managers read, as
        runc prints it: ``owner`` is named only in ``list`` (``state`` leaves it empty), and
        ``annotations`` appear only when the config has some."""
        doc = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid if self.status != STOPPED else 0,
            "status": self.status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner() if with_owner else "",
        }
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc


_held = -1  # the fd of the container lock this process holds


def lock(path: str, patience: float | None = None) -> None:
    """Take the container's lock, an flock on its state directory (if it still exists).

    ``create`` holds it until the container is made (or undone), so a ``delete`` meanwhile
    waits and then removes the whole container, instead of removing the directory under a
    create that then makes a container no state describes. A killed holder releases it.
    A holder that keeps it beyond ``patience`` seconds is stuck (a hook that never ends):
    the caller goes on without it, and that create, finding its container gone when it
    moves again, undoes what it made.
    """
    global _held
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    deadline = None if patience is None else time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
            break
        except BlockingIOError:
            if deadline is not None and time.monotonic() > deadline:
                os.close(fd)
                return
            time.sleep(0.005)
    _held = fd


def unlock() -> None:
    """Release the lock; in a forked child, drop only the inherited copy, and the lock stays
    with the parent (a forked init must not hold it for as long as it lives)."""
    global _held
    if _held >= 0:
        os.close(_held)
        _held = -1


def state_dir(root: str, container_id: str) -> str:
    check_id(container_id)
    return os.path.join(root, container_id)


def load(root: str, container_id: str, with_status: bool = True) -> State:
    path = state_dir(root, container_id)
    st = State(path, container_id)
    try:
        with open(os.path.join(path, STATE_FILE), "rb") as f:
            data = fastjson.loads(f.read().decode())
    except FileNotFoundError:
        if os.path.isdir(path):
            return st
        raise OcirtError(f"container {container_id!r} does not exist") from None
    except ValueError as exc:
        raise OcirtError(f"{path}/{STATE_FILE}: corrupt state: {exc}") from None
    st.pid, st.pid_start = data["pid"], data["pid_start"]
    st.bundle, st.rootfs, st.created = data["bundle"], data["rootfs"], data["created"]
    st.oci_version, st.annotations = data["oci_version"], data["annotations"]
    st.cgroup, st.config = data["cgroup"], data["config"]
    if with_status:
        st.status = current_status(st)
    return st


def init_alive(st: State) -> bool:
    """Alive means: the same process (same start time) still runs; a reused pid is not ours."""
    return st.pid > 0 and start_ticks(st.pid) == st.pid_start


def current_status(st: State) -> str:
    if not init_alive(st):
        return STOPPED
    if os.path.exists(st.fifo):
        return CREATED
    if st.cgroup:
        from ocirt.runtime.cgroups.base import saved_frozen

        if saved_frozen(st.cgroup):
            return PAUSED
    return RUNNING


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isdir(os.path.join(root, n)))
