"""``--systemd-cgroup``: where systemd would put the container, for the cgroupfs driver.

``linux.cgroupsPath`` is ``slice:prefix:name``, as for runc; an empty path is
``system.slice:ocirt:<id>``. The cgroup is ``<slice path>/<prefix>-<name>.scope`` with the
slice expanded as systemd does (``a-b.slice`` is ``a.slice/a-b.slice``), created and
managed by the cgroupfs driver. No transient unit is registered over D-Bus, so systemd
does not know the scope exists; the flag only chooses the place, and needs a host
running systemd.
"""

from __future__ import annotations

import os

from ocirt.runtime.errors import OcirtError, SpecError

DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "ocirt"


def scope_path(cgroups_path: str, container_id: str) -> str:
    path = systemd_path(cgroups_path, container_id)
    if not os.path.isdir("/run/systemd/system"):
        raise OcirtError("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system)")
    return path


def systemd_path(cgroups_path: str, container_id: str) -> str:
    """The absolute cgroup path for ``slice:prefix:name`` (checked, not yet looked up)."""
    if not cgroups_path:
        return f"{expand_slice(DEFAULT_SLICE)}/{DEFAULT_PREFIX}-{container_id}.scope"
    parts = cgroups_path.split(":")
    if len(parts) != 3 or not parts[2] or "/" in parts[1] + parts[2]:
        raise SpecError(
            "linux.cgroupsPath",
            f"expected slice:prefix:name for --systemd-cgroup, got {cgroups_path!r}",
        )
    slice_name, prefix, name = parts
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
    parent = expand_slice(slice_name or DEFAULT_SLICE)
    return f"{parent}/{unit}" if parent != "/" else f"/{unit}"


def expand_slice(name: str) -> str:
    """``a-b-c.slice`` -> ``/a.slice/a-b.slice/a-b-c.slice``; ``-.slice`` is the root."""
    if name == "-.slice":
        return "/"
    stem = name.removesuffix(".slice")
    parts = stem.split("-")
    if stem == name or "/" in name or not all(parts):
        raise SpecError("linux.cgroupsPath", f"invalid systemd slice name {name!r}")
    return "".join(f"/{'-'.join(parts[: i + 1])}.slice" for i in range(len(parts)))
