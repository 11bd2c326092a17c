"""``ocirt update``: new cgroup limits for a created, running or paused container.

The request is a ``linux.resources`` object, from ``--resources FILE`` (``-`` for stdin;
the other flags are then ignored, as in runc) or built from runc's flags. As runc does, it
is merged into the resources of earlier updates and the whole is applied again, because
some values depend on each other (memory+swap against memory, quota against period); the
merge is recorded in ``state.json`` under ``config.resources``. Every update re-applies the
device rules as well (on cgroup v2 a new eBPF program replaces the old one); a ``devices``
list in ``--resources`` replaces the rules (runc ignores one there). Under
``--systemd-cgroup`` the unit's limit properties follow, as runc sets them.
"""

from __future__ import annotations

import sys

from ocirt.foundation import fastjson, units
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ocirt.runtime.api import Runtime
    from ocirt.runtime.log import Log


def parse_size(flag: str, text: str) -> int:
    """``64m``, ``1.5g``, ``512KiB``, ``100`` (bytes), or ``-1`` for unlimited."""
    if text == "-1":
        return -1
    try:
        return units.parse_size(text)
    except ValueError:
        raise OcirtError(
            f"--{flag}: invalid size {text!r} (bytes, with an optional k, m, g, t or p suffix, or -1)"
        ) from None


def parse_signed(flag: str, text: str) -> int:
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise OcirtError(f"--{flag}: invalid value {text!r}: not an integer")
    return int(text)


def parse_unsigned(flag: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise OcirtError(f"--{flag}: invalid value {text!r}: not a non-negative integer")
    return int(text)


def _text(flag: str, text: str) -> str:
    return text


# flag -> (resources section, key, parser); the flag's destination is its name with underscores
FLAGS: dict[str, tuple[str, str, Callable[[str, str], int | str]]] = {
    "blkio-weight": ("blockIO", "weight", parse_signed),
    "cpu-period": ("cpu", "period", parse_unsigned),
    "cpu-quota": ("cpu", "quota", parse_signed),
    "cpu-burst": ("cpu", "burst", parse_unsigned),
    "cpu-share": ("cpu", "shares", parse_unsigned),
    "cpu-rt-period": ("cpu", "realtimePeriod", parse_unsigned),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", parse_signed),
    "cpu-idle": ("cpu", "idle", parse_signed),
    "cpuset-cpus": ("cpu", "cpus", _text),
    "cpuset-mems": ("cpu", "mems", _text),
    "memory": ("memory", "limit", parse_size),
    "memory-swap": ("memory", "swap", parse_size),
    "memory-reservation": ("memory", "reservation", parse_size),
    "kernel-memory-tcp": ("memory", "kernelTCP", parse_size),
    "pids-limit": ("pids", "limit", parse_signed),
}


def update_container(rt: Runtime, container_id: str, request: dict[str, Any]) -> None:
    """``request``: a ``linux.resources`` object, merged over the container's current one."""
    from ocirt.runtime.cgroups import load_cgroup
    from ocirt.specs.config import check_document

    st = statemod.load(rt.root, container_id)
    if st.status in (statemod.STOPPED, statemod.CREATING) or not st.cgroup:
        raise OcirtError(f"container {st.id!r} is not running")
    merged = merge(st.config.get("resources") or {}, request)
    cgroup = load_cgroup(st.cgroup)
    try:
        check_document(request, "linux.resources")  # as create checks config.json
        cgroup.apply(merged)
        if cgroup.unit and cgroup.version == 2:
            from ocirt.runtime.cgroups.systemd import set_limits

            set_limits(cgroup.unit, merged)
    except SpecError as err:
        raise OcirtError(str(err).removeprefix("config.json: ")) from None
    st.config["resources"] = merged
    st.save()


def from_flags(values: dict[str, str | None], log: Log) -> dict[str, Any]:
    """runc's update flags by name (``cpu-quota``: its text) as a ``linux.resources`` request."""
    for flag in ("l3-cache-schema", "mem-bw-schema"):
        if values.get(flag):
            raise OcirtError(f"--{flag}: Intel RDT is not supported by ocirt")
    request: dict[str, Any] = {}
    for flag, (section, key, parse) in FLAGS.items():
        text = values.get(flag)
        if text:
            request.setdefault(section, {})[key] = parse(flag, text)
    if values.get("kernel-memory"):
        log.warning("--kernel-memory is ignored: kernel memory limits are obsolete")
    return unlimited_swap(request)


def from_file(path: str, log: Log) -> dict[str, Any]:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as f:
                text = f.read()
    except OSError as exc:
        raise OcirtError(f"--resources {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise OcirtError(f"--resources {path}: not UTF-8 text") from None
    try:
        request = fastjson.loads(text)
    except ValueError as exc:
        raise OcirtError(f"--resources {path}: invalid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise OcirtError(f"--resources {path}: must be a JSON object (linux.resources)")
    return unlimited_swap(request)


def unlimited_swap(request: dict[str, Any]) -> dict[str, Any]:
    """runc: an unlimited memory without a swap value lifts memory+swap too (cgroup v1
    refuses memory above memory+swap), even when an earlier update set swap."""
    memory = request.get("memory")
    if isinstance(memory, dict) and memory.get("limit") == -1 and "swap" not in memory:
        memory["swap"] = -1
    return request


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Sections are merged key by key; anything else (lists, scalars) is replaced."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
