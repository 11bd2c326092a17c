"""The container's cgroup: where it lives, and the operations the runtime needs on it.

The driver follows what the host mounts: when ``/sys/fs/cgroup`` is itself cgroup2 the v2
driver is used; otherwise the v1 driver, which on a hybrid host joins the unified hierarchy at
``/sys/fs/cgroup/unified`` only where v1 lacks what it offers (``v1.needs_unified``).

``linux.cgroupsPath`` is placed as runc's cgroupfs driver places it: an absolute path is
taken from each hierarchy's root; a relative one from the cgroup of the calling process in
that hierarchy (``/proc/self/cgroup``); an empty one is the relative path ``<id>``. Paths
are cleaned first, so ``..`` cannot climb above that starting point. With
``--systemd-cgroup`` the path is ``slice:prefix:name`` and the cgroup is a transient scope
unit of systemd's (see ``systemd``): ``unit`` names it once started, else it is None.
"""

from __future__ import annotations

import os

from ocirt.runtime.cgroups.base import ROOT as ROOT
from ocirt.runtime.cgroups.base import SIGKILL as SIGKILL
from ocirt.runtime.cgroups.base import Cgroup as Cgroup
from ocirt.runtime.cgroups.base import clean_path as clean_path
from ocirt.runtime.cgroups.base import makedirs as makedirs
from ocirt.runtime.cgroups.base import own_cgroups as own_cgroups
from ocirt.runtime.cgroups.base import place as place
from ocirt.runtime.cgroups.base import procs_under as procs_under
from ocirt.runtime.cgroups.base import read_file as read_file
from ocirt.runtime.cgroups.base import remove_tree as remove_tree
from ocirt.runtime.cgroups.base import write_file as write_file
from ocirt.runtime.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PATH_MAX, _NAME_MAX = 4096, 255


def open_cgroup(cgroups_path: str | None, container_id: str, systemd: bool) -> Cgroup:
    if systemd:
        from ocirt.runtime.cgroups.systemd import locate

        inner = locate(cgroups_path or "", container_id)
    else:
        inner = clean_path(cgroups_path or container_id)
    cg: Cgroup
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        from ocirt.runtime.cgroups.v2 import open_v2

        cg = open_v2(inner)
    else:
        from ocirt.runtime.cgroups.v1 import open_v1

        cg = open_v1(inner, systemd)
    return _fits(cg)


def rootless_view(cgroup: Cgroup) -> Cgroup | None:
    """What of the container's cgroup a user other than root may make and join, or None
    where the tree is not delegated to it. As runc does, the unified hierarchy of a hybrid
    host is left out, and the v1 devices rules are skipped (they need CAP_SYS_ADMIN)."""
    if cgroup.version != 1:
        return cgroup if all(_writable(p) for p in cgroup.dirs()) else None
    from ocirt.runtime.cgroups.v1 import V1Cgroup

    # cgroup2 also wants the caller inside the delegated subtree: runc ignores the failure
    keep = {k: p for k, p in cgroup.paths.items() if k != "unified"}
    if not keep or not all(_writable(p) for p in keep.values()):
        return None
    return V1Cgroup(keep)


def _writable(path: str) -> bool:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return os.access(path, os.W_OK)


class NoCgroup(Cgroup):
    """A rootless container without a delegated cgroup stays where its caller is, as with
    runc: ``paths`` are the caller's cgroups (for the container's /sys/fs/cgroup binds),
    never made, joined or removed, and with no members of the container's own. Its state is
    empty, which every command reads as "no cgroup"."""

    __slots__ = ()

    def create(self) -> None:
        return

    def apply(self, resources: dict[str, Any] | None) -> None:
        return

    def add(self, pid: int) -> None:
        return

    def join(self) -> None:
        return

    def pids(self) -> list[int]:
        return []

    def to_state(self) -> dict[str, Any]:
        return {}


def callers_cgroup() -> NoCgroup:
    own = own_cgroups()
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        return NoCgroup({"": ROOT + own.get("", "/").rstrip("/")})
    from ocirt.runtime.cgroups.v1 import hierarchies

    paths = {}
    for key, (mountpoint, root) in hierarchies().items():
        paths[key] = place(mountpoint, root, "", own.get("" if key == "unified" else key, "/")).rstrip("/")
    return NoCgroup(paths)


def _fits(cgroup: Cgroup) -> Cgroup:
    """A directory the kernel cannot name would be made in part and then never removed:
    refuse it before anything exists (PATH_MAX, less room for the files inside; NAME_MAX)."""
    for path in cgroup.dirs():
        size = len(path.encode())
        if size > _PATH_MAX - 64:
            raise SpecError("linux.cgroupsPath", f"the cgroup's path would be {size} bytes long, too long")
        longest = max(len(part.encode()) for part in path.split("/"))
        if longest > _NAME_MAX:
            raise SpecError("linux.cgroupsPath", f"a name of {longest} bytes, the kernel allows {_NAME_MAX}")
    return cgroup


def load_cgroup(saved: dict[str, Any]) -> Cgroup:
    cg: Cgroup
    if saved.get("version") == 2:
        from ocirt.runtime.cgroups.v2 import V2Cgroup

        cg = V2Cgroup(saved["path"], saved["root"])
    else:
        from ocirt.runtime.cgroups.v1 import V1Cgroup

        cg = V1Cgroup(saved["paths"])
    cg.unit = saved.get("unit")
    return cg
